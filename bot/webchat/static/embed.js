// The embed snippet's script: a helpline puts these two lines on its own site
//
//   <script src="https://chat.example.org/embed.js" data-label="Chat med oss"
//           data-close-label="Lukk" defer></script>
//
// and gets a button that opens the chat page in a panel (an iframe from the chat's
// origin; list the site's origin in webchat.frame_ancestors). The page's quick exit
// reaches this script by postMessage: the site is hidden at once and replaced (no way
// Back) as soon as the chat has said "!slett", or after 2.5 s at most.
//
// Not bundled, no dependencies, nothing stored: it runs under the site's own CSP
// (script-src and frame-src must allow the chat's origin).
(() => {
    const me = document.currentScript;
    if (!me) return;
    const origin = new URL(me.src).origin;
    const label = me.dataset.label || "Chat";
    const closeLabel = me.dataset.closeLabel || "Lukk";
    const LEAVE_AFTER_MS = 2500;

    const button = document.createElement("button");
    button.type = "button";
    button.textContent = label;
    button.setAttribute("aria-expanded", "false");
    Object.assign(button.style, {
        position: "fixed",
        right: "16px",
        bottom: "16px",
        zIndex: "2147483646",
        padding: "12px 18px",
        border: "0",
        borderRadius: "24px",
        background: "#1d4e89",
        color: "#fff",
        font: "600 16px/1.2 system-ui, sans-serif",
        cursor: "pointer",
    });

    let panel = null;
    function open() {
        if (panel) {
            panel.hidden = false;
        } else {
            panel = document.createElement("div");
            panel.setAttribute("role", "dialog");
            panel.setAttribute("aria-label", label);
            Object.assign(panel.style, {
                position: "fixed",
                right: "16px",
                bottom: "72px",
                width: "min(400px, calc(100vw - 32px))",
                height: "min(640px, calc(100vh - 96px))",
                zIndex: "2147483647",
                boxShadow: "0 4px 24px rgba(0,0,0,.3)",
                borderRadius: "8px",
                overflow: "hidden",
                background: "#fff",
                display: "flex",
                flexDirection: "column",
            });
            const close = document.createElement("button");
            close.type = "button";
            close.textContent = "×";
            close.setAttribute("aria-label", closeLabel);
            Object.assign(close.style, {
                alignSelf: "flex-end",
                minWidth: "44px",
                minHeight: "36px",
                border: "0",
                background: "transparent",
                color: "#1d1d1d",
                fontSize: "20px",
                cursor: "pointer",
            });
            close.addEventListener("click", hide);
            const frame = document.createElement("iframe");
            frame.src = `${origin}/`;
            frame.title = label;
            frame.referrerPolicy = "no-referrer";
            Object.assign(frame.style, { width: "100%", flex: "1", border: "0" });
            panel.append(close, frame);
            document.body.append(panel);
        }
        button.setAttribute("aria-expanded", "true");
    }
    function hide() {
        if (panel) panel.hidden = true;
        button.setAttribute("aria-expanded", "false");
        button.focus();
    }
    button.addEventListener("click", () => (panel && !panel.hidden ? hide() : open()));

    let leaving = null;
    window.addEventListener("message", (event) => {
        if (event.origin !== origin || typeof event.data !== "object" || !event.data) return;
        const { type, url } = event.data;
        if (type === "helpline-webchat:quick-exit" && !leaving) {
            // Hide the whole site now; leave when the chat is done, or soon in any case.
            document.documentElement.style.display = "none";
            const target = typeof url === "string" && /^https?:/.test(url) ? url : "about:blank";
            leaving = () => window.location.replace(target);
            setTimeout(leaving, LEAVE_AFTER_MS);
        } else if (type === "helpline-webchat:quick-exit-done" && leaving) {
            leaving();
        }
    });

    if (document.body) document.body.append(button);
    else document.addEventListener("DOMContentLoaded", () => document.body.append(button));
})();
