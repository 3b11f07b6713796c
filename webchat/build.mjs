// Builds the page into bot/webchat/static/: the ESM bundle of src/app.js, the Rust
// crypto's .wasm next to it (the crypto package fetches it by a URL relative to the
// bundle; esbuild neither copies nor rewrites it), and the HTML, the CSS and the embed
// snippet's script (embed.js: it runs on the helpline's own site) as they are.
// The output is committed: `.ci/run` builds again and fails when it differs.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "bot", "webchat", "static");
const wasm = join(
    here, "node_modules", "@matrix-org", "matrix-sdk-crypto-wasm", "pkg",
    "matrix_sdk_crypto_wasm_bg.wasm",
);

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "pkg"), { recursive: true });
await build({
    entryPoints: [join(here, "src", "app.js")],
    outfile: join(out, "app.js"),
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify: true,
    legalComments: "linked",
    logLevel: "warning",
});
// The crypto package asks for new URL("./pkg/matrix_sdk_crypto_wasm_bg.wasm", import.meta.url).
copyFileSync(wasm, join(out, "pkg", "matrix_sdk_crypto_wasm_bg.wasm"));
for (const name of ["index.html", "app.css", "embed.js"]) {
    copyFileSync(join(here, "src", name), join(out, name));
}
console.log(`built ${readdirSync(out).join(", ")} in ${out}`);
