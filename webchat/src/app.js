// The web chat page: a throw-away account from the bot, then an end-to-end-encrypted
// conversation in this tab with matrix-js-sdk and its Rust crypto (the crypto of Element).
//
// Rules this file keeps (README, "Web chat"):
// - Nothing in cookies, localStorage or IndexedDB: the crypto store is in memory, the
//   client's store is in memory. What a reload needs (the password, the access token, the
//   cross-signing secrets, the room keys) lives in sessionStorage under one key while the
//   chat is open, and is removed when it ends or at the quick exit.
// - Received text is shown with textContent only, never as HTML; links stay plain text.
// - js-sdk's loggers are silenced: they write room and event IDs to the console.
// - Nothing is fetched from any other origin than this one and the homeserver (the CSP
//   enforces it too).
// - This page's token (random, made here) goes with every account request, so that the
//   bot can recognise a chatter it blocked when they start over in the same page. It lives
//   in this page's memory, and in sessionStorage only while a chat is open (a reload goes
//   on with the same chat); a reload after the end, or a new tab, makes a new one.

import { logger as sdkLogger } from "matrix-js-sdk/lib/logger.js";
import {
    ClientEvent,
    createClient,
    MatrixEventEvent,
    MemoryStore,
    RoomEvent,
    RoomMemberEvent,
} from "matrix-js-sdk";
import { OnlySignedDevicesIsolationMode } from "matrix-js-sdk/lib/crypto-api/index.js";

// ------------------------------------------------------------------ quiet logging

const noop = () => {};
const quiet = {
    trace: noop,
    debug: noop,
    info: noop,
    warn: noop,
    error: noop,
    getChild: () => quiet,
};
function silence(log) {
    // js-sdk's module loggers are loglevel loggers made at import time: make each one,
    // and every child made later, a no-op.
    log.methodFactory = () => noop;
    log.rebuild?.();
    log.disableAll?.(false);
}
silence(sdkLogger);
const sdkGetChild = sdkLogger.getChild;
sdkLogger.getChild = (name) => {
    const child = sdkGetChild.call(sdkLogger, name);
    silence(child);
    return child;
};

// ------------------------------------------------------------------ state

const STORE_KEY = "helpline-webchat";
const $ = (id) => document.getElementById(id);

let config = null; // GET /api/config
let lang = "nb";
let client = null;
let roomId = null;
let ended = false;
const shown = new Map(); // event id -> <li>, to render each event once
let keysTimer = null;
let canJoin = false; // set once this device is cross-signed: the bot's keys go only to such
let invitedTo = null; // an invite that came before that
let browser = null; // this page's token (see the top of this file)

function newToken() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function t(key) {
    return config?.texts?.[lang]?.[key] ?? config?.texts?.[config.language]?.[key] ?? "";
}

function saved() {
    try {
        return JSON.parse(sessionStorage.getItem(STORE_KEY) ?? "null");
    } catch {
        return null;
    }
}

function save(patch) {
    sessionStorage.setItem(STORE_KEY, JSON.stringify({ ...(saved() ?? {}), ...patch }));
}

function forget() {
    sessionStorage.removeItem(STORE_KEY);
    sessionStorage.clear();
}

// ------------------------------------------------------------------ the view

const LANGUAGE_NAMES = { nb: "Norsk", en: "English" };

function renderTexts() {
    document.documentElement.lang = lang;
    document.title = t("title");
    $("title").textContent = t("title");
    $("quick-exit").textContent = t("quick_exit");
    $("intro-text").textContent = t("intro");
    $("start").textContent = t("start");
    $("message-label").textContent = t("message_label");
    $("send").textContent = t("send");
    $("end").textContent = t("end");
    $("ended-text").textContent = t("ended");
    $("start-over").textContent = t("start_over");
    $("language-label").textContent = t("language");
    for (const button of $("languages").querySelectorAll("button")) {
        button.setAttribute("aria-pressed", String(button.dataset.lang === lang));
    }
    for (const li of $("log").querySelectorAll("li.mine .who")) li.textContent = t("you");
}

function renderLanguages() {
    const nav = $("languages");
    for (const code of config.languages) {
        const button = document.createElement("button");
        button.type = "button";
        button.dataset.lang = code;
        button.lang = code;
        button.textContent = LANGUAGE_NAMES[code] ?? code;
        button.addEventListener("click", () => {
            lang = code;
            renderTexts();
        });
        nav.append(button);
    }
}

function status(text) {
    $("status").textContent = text;
}

function refuse(text) {
    const box = $("refusal");
    box.textContent = text;
    box.hidden = !text;
}

function showChat() {
    $("intro").hidden = true;
    $("ended").hidden = true;
    $("chat").hidden = false;
}

function setComposer(enabled) {
    for (const id of ["message", "send", "end"]) $(id).disabled = !enabled;
}

/** One message in the log, ordered by the server's timestamp (a reload decrypts out of order). */
function addMessage(id, { who, body, kind, ts }) {
    if (shown.has(id)) return;
    const li = document.createElement("li");
    li.className = `msg ${kind}`;
    li.dataset.ts = String(ts);
    if (who) {
        const name = document.createElement("span");
        name.className = "who";
        name.textContent = who;
        li.append(name);
    }
    const text = document.createElement("span");
    text.className = "body";
    text.textContent = body;
    li.append(text);
    shown.set(id, li);
    const log = $("log");
    const later = [...log.children].find((other) => Number(other.dataset.ts) > ts);
    log.insertBefore(li, later ?? null);
    li.scrollIntoView({ block: "end" });
}

// ------------------------------------------------------------------ the API

async function api(path, body) {
    const resp = await fetch(path, {
        method: body === undefined ? "GET" : "POST",
        headers: body === undefined ? {} : { "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit",
        cache: "no-store",
    });
    const data = await resp.json().catch(() => ({}));
    return { ok: resp.ok, data };
}

function leadingZeroBits(bytes) {
    let bits = 0;
    for (const byte of bytes) {
        if (byte === 0) {
            bits += 8;
            continue;
        }
        return bits + Math.clz32(byte) - 24;
    }
    return bits;
}

/** A nonce such that sha256(challenge + nonce) starts with `difficulty` zero bits. */
async function solve(challenge, difficulty) {
    const encoder = new TextEncoder();
    const batch = 512; // digests in flight at once: WebCrypto is async per call
    for (let start = 0; ; start += batch) {
        const nonces = Array.from({ length: batch }, (_, i) => (start + i).toString(36));
        const digests = await Promise.all(
            nonces.map((n) => crypto.subtle.digest("SHA-256", encoder.encode(challenge + n))),
        );
        const i = digests.findIndex((d) => leadingZeroBits(new Uint8Array(d)) >= difficulty);
        if (i >= 0) return nonces[i];
    }
}

// ------------------------------------------------------------------ Matrix

async function login(homeserver, user, password) {
    const anon = createClient({ baseUrl: homeserver, logger: quiet, store: new MemoryStore() });
    const resp = await anon.loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user },
        password,
        initial_device_display_name: "Web chat",
    });
    return { token: resp.access_token, device: resp.device_id, user: resp.user_id };
}

async function logoutOld(homeserver, token) {
    // The previous tab's device: its keys died with its memory.
    await fetch(`${homeserver}/_matrix/client/v3/logout`, {
        method: "POST",
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: "{}",
        credentials: "omit",
    }).catch(noop);
}

function firstSync(cli) {
    return new Promise((resolve, reject) => {
        const on = (state, prev, data) => {
            if (state === "PREPARED" || state === "SYNCING") {
                cli.off(ClientEvent.Sync, on);
                resolve();
            } else if (state === "ERROR" && !prev) {
                cli.off(ClientEvent.Sync, on);
                reject(data?.error ?? new Error("first sync failed"));
            }
        };
        cli.on(ClientEvent.Sync, on);
    });
}

async function connect(session, { fresh }) {
    const cli = createClient({
        baseUrl: session.homeserver,
        userId: session.user,
        deviceId: session.device,
        accessToken: session.token,
        logger: quiet,
        // createClient's default store keeps the sync filter's ID in localStorage.
        store: new MemoryStore(),
    });
    await cli.initRustCrypto({ useIndexedDB: false });
    const crypto = cli.getCrypto();
    // Element's setting: never send room keys to, nor read from, devices their owner has
    // not cross-signed (the bot keeps the same rule the other way).
    crypto.setDeviceIsolationMode(new OnlySignedDevicesIsolationMode());
    if (!fresh) {
        // Same identity as before the reload: no new cross-signing keys, no password prompt.
        await crypto.importSecretsBundle(session.secrets);
        if (session.roomKeys) await crypto.importRoomKeysAsJson(session.roomKeys);
    }
    client = cli;
    cli.on(RoomEvent.MyMembership, onMyMembership);
    cli.on(RoomEvent.Timeline, onTimeline);
    cli.on(MatrixEventEvent.Decrypted, onDecrypted);
    cli.on(RoomMemberEvent.Typing, onTyping);
    cli.on(ClientEvent.Sync, onSync);
    const synced = firstSync(cli);
    await cli.startClient({ initialSyncLimit: 50, lazyLoadMembers: false });
    await synced;
    if (fresh) {
        await crypto.bootstrapCrossSigning({
            setupNewCrossSigning: true,
            authUploadDeviceSigningKeys: async (makeRequest) => {
                try {
                    // Synapse takes an account's first keys without asking again (MSC3967).
                    return await makeRequest(null);
                } catch (err) {
                    if (err?.httpStatus !== 401 || !err?.data?.flows) throw err;
                    return await makeRequest({
                        type: "m.login.password",
                        identifier: { type: "m.id.user", user: session.user },
                        password: session.password,
                        session: err.data.session,
                    });
                }
            },
        });
        save({ secrets: await crypto.exportSecretsBundle() });
    } else {
        await crypto.crossSignDevice(session.device);
    }
}

function onSync(state) {
    if (state === "ERROR" && !ended && roomId) status(t("failed"));
    else if (state === "SYNCING" && $("status").textContent === t("failed")) status("");
}

function onMyMembership(room, membership) {
    if (ended) return;
    if (membership === "invite" && !roomId) {
        if (canJoin) join(room.roomId).catch(fail);
        else invitedTo = room.roomId;
    } else if ((membership === "leave" || membership === "ban") && room.roomId === roomId) {
        finish();
    }
}

async function join(id) {
    if (roomId) return;
    roomId = id;
    save({ room: id });
    await client.joinRoom(id);
    await ready();
}

async function ready() {
    // Send only once the crypto knows the room is encrypted (js-sdk would otherwise send
    // in the clear into a room it has not yet seen as encrypted).
    for (let i = 0; i < 200 && !(await client.getCrypto().isEncryptionEnabledInRoom(roomId)); i++) {
        await new Promise((r) => setTimeout(r, 50));
    }
    status("");
    setComposer(true);
    const room = client.getRoom(roomId);
    for (const event of room?.getLiveTimeline().getEvents() ?? []) show(event);
}

function onTimeline(event, room) {
    if (room?.roomId !== roomId || !roomId) return;
    if (event.getType() === "m.room.member" && event.getStateKey() === client.getUserId()) {
        const membership = event.getContent()?.membership;
        if (membership === "leave" || membership === "ban") finish();
        return;
    }
    show(event); // an encrypted event is shown by onDecrypted, once it is
}

function onDecrypted(event) {
    if (event.getRoomId() === roomId && !event.isDecryptionFailure()) show(event);
}

function show(event) {
    const id = event.getId();
    if (!id || id.startsWith("~") || event.status !== null) return; // a local echo
    if (event.getType() !== "m.room.message" || event.isRedacted()) return;
    const content = event.getContent();
    if (typeof content.body !== "string") return;
    if (content["m.relates_to"]?.rel_type === "m.replace") {
        const original = shown.get(content["m.relates_to"].event_id);
        const body = content["m.new_content"]?.body;
        if (original && typeof body === "string") {
            original.querySelector(".body").textContent = body;
        }
        return;
    }
    const mine = event.getSender() === client.getUserId();
    let kind = mine ? "mine" : "theirs";
    let who = mine ? t("you") : (event.sender?.name ?? "");
    let body = content.body;
    if (!mine && content.msgtype === "m.notice") {
        // The helpline's own words (welcome, queue place, closing text): no persona name.
        kind = "notice";
        who = "";
    } else if (content.msgtype === "m.emote") {
        body = `* ${who} ${body}`;
    }
    addMessage(id, { who, body, kind, ts: event.getTs() });
    keepRoomKeys();
}

function onTyping(event, member) {
    if (!roomId || member.roomId !== roomId || member.userId === client.getUserId()) return;
    $("typing").textContent = member.typing ? `${member.name} ${t("typing")}` : "";
}

/** The room keys in sessionStorage, so that a reload can read the history again. */
function keepRoomKeys() {
    clearTimeout(keysTimer);
    keysTimer = setTimeout(async () => {
        if (!client || ended) return;
        try {
            save({ roomKeys: await client.getCrypto().exportRoomKeysAsJson() });
        } catch {
            // Only the history after a reload depends on it.
        }
    }, 200);
}

async function send(body) {
    if (!client || !roomId) return false;
    if (!(await client.getCrypto().isEncryptionEnabledInRoom(roomId))) return false;
    const resp = await client.sendMessage(roomId, { msgtype: "m.text", body });
    addMessage(resp.event_id, { who: t("you"), body, kind: "mine", ts: Date.now() });
    keepRoomKeys();
    return true;
}

function stopClient() {
    if (!client) return;
    client.removeAllListeners();
    client.stopClient();
    client = null;
}

/** The conversation is over (the bot closed the room): nothing kept, offer a new one. */
function finish() {
    if (ended) return;
    ended = true;
    setComposer(false);
    $("composer").hidden = true;
    $("typing").textContent = "";
    stopClient();
    forget();
    $("ended").hidden = false;
    $("start-over").focus();
}

/** Back to the start, in this page (its token stays: see the top of this file). */
function startOver() {
    stopClient();
    forget();
    ended = false;
    roomId = null;
    invitedTo = null;
    canJoin = false;
    shown.clear();
    $("log").replaceChildren();
    $("typing").textContent = "";
    status("");
    refuse("");
    $("composer").hidden = false;
    $("ended").hidden = true;
    $("chat").hidden = true;
    $("intro").hidden = false;
    $("start").disabled = false;
    $("start").focus();
}

function fail(err) {
    // No details: they can hold IDs. The words come with the emergency numbers.
    void err;
    status("");
    refuse(t("failed"));
}

// ------------------------------------------------------------------ actions

async function start() {
    $("start").disabled = true;
    refuse("");
    status(t("preparing"));
    try {
        const challenge = await api("/api/challenge", {});
        if (!challenge.ok) throw new Error("no challenge");
        const nonce = await solve(challenge.data.challenge, challenge.data.difficulty);
        const account = await api("/api/account", {
            challenge: challenge.data.challenge,
            nonce,
            language: lang,
            browser,
        });
        if (!account.ok) {
            status("");
            refuse(account.data.text ?? t("failed"));
            $("start").disabled = false;
            return;
        }
        const { homeserver, user_id: user, password } = account.data;
        const session = {
            homeserver,
            password,
            language: lang,
            browser,
            ...(await login(homeserver, user, password)),
        };
        save(session);
        showChat();
        await connect(session, { fresh: true });
        status(t("waiting"));
        $("message").focus();
        await joinWhenInvited();
    } catch (err) {
        fail(err);
    }
}

/** Now that this device is cross-signed: join the invite that came before, if any. */
async function joinWhenInvited() {
    canJoin = true;
    const invited = client.getRooms().find((r) => r.getMyMembership() === "invite");
    const id = invitedTo ?? invited?.roomId;
    if (id && !roomId) await join(id);
}

async function resume(session) {
    lang = session.language ?? lang;
    renderTexts();
    showChat();
    status(t("waiting"));
    try {
        await logoutOld(session.homeserver, session.token);
        const fresh = await login(session.homeserver, session.user, session.password);
        Object.assign(session, fresh);
        save(fresh);
        await connect(session, { fresh: false });
        const room = session.room ? client.getRoom(session.room) : null;
        if (room?.getMyMembership() === "join") {
            roomId = session.room;
            await ready();
        } else {
            await joinWhenInvited();
        }
    } catch (err) {
        fail(err);
    }
}

const framed = window.top !== window;

/** Tell the site that embeds this page (embed.js) to hide itself / to leave now. */
function tellSite(type, url) {
    if (framed) window.parent.postMessage({ type: `helpline-webchat:${type}`, url }, "*");
}

async function quickExit() {
    // Hide everything at once (and the embedding site, if any); then say "!slett" (the
    // conversation is purged now) for at most a moment, forget everything and leave
    // without a way Back.
    document.body.hidden = true;
    ended = true;
    const url = config?.quick_exit_url ?? "about:blank";
    tellSite("quick-exit", url);
    const last = client && roomId ? send("!slett") : null;
    forget();
    if (last) await Promise.race([last.catch(noop), new Promise((r) => setTimeout(r, 2000))]);
    stopClient();
    forget();
    if (framed) tellSite("quick-exit-done", url);
    else location.replace(url);
}

async function onSubmit(event) {
    event.preventDefault();
    const box = $("message");
    const body = box.value.trim();
    if (!body) return;
    box.value = "";
    client?.sendTyping(roomId, false, 0).catch(noop);
    try {
        if (!(await send(body))) box.value = body;
    } catch (err) {
        box.value = body;
        fail(err);
    }
    box.focus();
}

let typingSent = 0;
function onInput() {
    if (!client || !roomId) return;
    const now = Date.now();
    if (now - typingSent > 4000) {
        typingSent = now;
        client.sendTyping(roomId, true, 6000).catch(noop);
    }
}

async function main() {
    $("quick-exit").addEventListener("click", () => {
        quickExit().catch(() => location.replace(config?.quick_exit_url ?? "about:blank"));
    });
    const answer = await api("/api/config");
    config = answer.data;
    lang = config.language;
    renderLanguages();
    renderTexts();
    $("start").addEventListener("click", () => start());
    $("composer").addEventListener("submit", onSubmit);
    $("message").addEventListener("input", onInput);
    $("message").addEventListener("keydown", (event) => {
        if (event.key === "Enter" && !event.shiftKey) {
            event.preventDefault();
            $("composer").requestSubmit();
        }
    });
    $("end").addEventListener("click", () => {
        send(lang === "en" ? "!end" : "!slutt").catch(fail);
    });
    $("start-over").addEventListener("click", startOver);
    const session = saved();
    browser = session?.browser ?? newToken();
    if (session?.secrets && session?.token) {
        await resume(session);
    } else {
        forget();
        $("start").disabled = false;
    }
}

main().catch(fail);
