// An Element-stack test client: matrix-js-sdk with its Rust crypto (the crypto of Element
// Web), driven by the Python suite over stdin/stdout, one JSON object per line.
//
// In (stdin):   {"id": 1, "cmd": "login", "args": {...}}
// Out (stdout): {"id": 1, "ok": true, "result": {...}}
//               {"id": 1, "ok": false, "error": "...", "stack": "..."}
//               {"event": "<kind>", ...}   things that happened, unasked
//
// Events: "ready" (the process is up), "invite", "message" (decrypted or clear),
// "undecryptable" (with the SDK's DecryptionFailureCode), "error" (anything that went wrong
// outside a command: sync errors, unhandled rejections, exceptions), "stopped".
// Nothing fails silently: every command answers ok or with its error, every background
// failure is an "error" event, and the SDK's own log goes to stderr (the Python side keeps
// it in a file and shows its tail when a test fails). stdout carries only the protocol.
//
// Commands (args; every wait takes "timeout" in seconds and fails when it passes):
//   login {homeserver, user, password, device_name?}   a new device (in-memory crypto
//       store), Rust crypto initialised, first sync done, device keys on the server
//   set_isolation {mode: "only_signed" | "all_devices"}
//   bootstrap_cross_signing {}    master/self-signing/user-signing keys made and uploaded
//       (m.login.password when the server asks), this device signed; checked on the server
//   create_room {invite?, is_direct?, name?}   an encrypted private room
//   wait_for_invite {room_id?, sender?, timeout}
//   join {room_id}
//   wait_for_join {room_id, user_id, timeout}     a member's join as this client sees it
//   wait_for_encryption {room_id, timeout}        the crypto knows the room is encrypted
//   send_text {room_id, body, msgtype?}           refuses if the room is not known encrypted
//   wait_for_message {room_id?, sender?, contains?, timeout}   oldest unread match, not own
//   device_trust {user_id, timeout}    the user's devices as this client's crypto sees them
//   leave {room_id}
//   stop {}                        stop syncing and exit 0

import "./polyfill.mjs";
import { format } from "node:util";
import { createInterface } from "node:readline";
import { readFileSync } from "node:fs";

// The SDK logs through console.*; console.log/info/debug would write to stdout, which is
// the protocol channel. Send all of it to stderr, before the SDK is loaded.
const toStderr = (...args) => {
    process.stderr.write(`${new Date().toISOString()} ${format(...args)}\n`);
};
for (const method of ["log", "info", "debug", "trace", "warn", "error"]) {
    console[method] = toStderr;
}

function emit(obj) {
    process.stdout.write(`${JSON.stringify(obj)}\n`);
}

function describe(err) {
    if (err instanceof Error) {
        const extra = err.httpStatus ? ` (HTTP ${err.httpStatus} ${err.errcode ?? ""})` : "";
        return { error: `${err.name}: ${err.message}${extra}`, stack: err.stack };
    }
    return { error: String(err) };
}

process.on("unhandledRejection", (reason) => {
    emit({ event: "error", where: "unhandledRejection", ...describe(reason) });
});
process.on("uncaughtException", (err) => {
    emit({ event: "error", where: "uncaughtException", ...describe(err) });
});

const sdk = await import("matrix-js-sdk");
const { OnlySignedDevicesIsolationMode, AllDevicesIsolationMode } = await import(
    "matrix-js-sdk/lib/crypto-api/index.js"
);
const { Method } = await import("matrix-js-sdk/lib/http-api/method.js");
const { ClientEvent, RoomEvent, MatrixEventEvent, RoomStateEvent } = sdk;

const MEGOLM = "m.megolm.v1.aes-sha2";

let client = null;
let password = null;
const messages = []; // every message recorded, oldest first
const pendingMessages = []; // not yet taken by wait_for_message
const undecryptable = new Map(); // event_id -> record, while it has no key
const recorded = new Set(); // event ids recorded as messages
const pendingInvites = [];
const seenInvites = new Set();
const waiters = new Set(); // functions re-checked whenever something changes

function changed() {
    for (const check of [...waiters]) check();
}

/** Resolve with check()'s first non-undefined value; fail after `timeout` seconds. */
function waitFor(what, timeout, check, onTimeout) {
    if (typeof timeout !== "number" || !(timeout > 0)) {
        return Promise.reject(new Error(`${what}: a positive "timeout" (seconds) is required`));
    }
    return new Promise((resolve, reject) => {
        let timer = null;
        const run = () => {
            let value;
            try {
                value = check();
            } catch (err) {
                waiters.delete(run);
                clearTimeout(timer);
                reject(err);
                return;
            }
            if (value !== undefined) {
                waiters.delete(run);
                clearTimeout(timer);
                resolve(value);
            }
        };
        timer = setTimeout(() => {
            waiters.delete(run);
            const detail = onTimeout ? `; ${onTimeout()}` : "";
            reject(new Error(`timed out after ${timeout}s waiting for ${what}${detail}`));
        }, timeout * 1000);
        waiters.add(run);
        run();
    });
}

/** Poll an async condition every 50 ms until it yields a non-undefined value. */
async function pollFor(what, timeout, check) {
    if (typeof timeout !== "number" || !(timeout > 0)) {
        throw new Error(`${what}: a positive "timeout" (seconds) is required`);
    }
    const deadline = Date.now() + timeout * 1000;
    for (;;) {
        const value = await check();
        if (value !== undefined) return value;
        if (Date.now() > deadline) throw new Error(`timed out after ${timeout}s waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 50));
    }
}

function need(args, ...names) {
    for (const name of names) {
        if (args[name] === undefined) throw new Error(`missing argument "${name}"`);
    }
}

function requireClient() {
    if (!client) throw new Error("not logged in");
    return client;
}

// ------------------------------------------------------------------ what the user sees

async function recordEvent(event) {
    const id = event.getId();
    // Local echoes of our own sends (status set, temporary id) are not what anyone read.
    if (!id || recorded.has(id) || event.status !== null) return;
    if (event.isEncrypted() || event.shouldAttemptDecryption()) {
        try {
            await client.decryptEventIfNeeded(event);
        } catch (err) {
            emit({ event: "error", where: `decrypting ${id}`, ...describe(err) });
        }
    }
    if (event.isDecryptionFailure()) {
        if (!undecryptable.has(id)) {
            const rec = {
                room_id: event.getRoomId(),
                sender: event.getSender(),
                event_id: id,
                reason: event.decryptionFailureReason ?? null,
                session_id: event.getWireContent()?.session_id ?? null,
            };
            undecryptable.set(id, rec);
            emit({ event: "undecryptable", ...rec });
        }
        return;
    }
    if (event.getType() !== "m.room.message" || recorded.has(id)) return;
    recorded.add(id);
    undecryptable.delete(id);
    const content = event.getContent();
    let shield = null;
    if (event.isEncrypted()) {
        try {
            const info = await client.getCrypto().getEncryptionInfoForEvent(event);
            if (info) shield = { colour: info.shieldColour, reason: info.shieldReason };
        } catch (err) {
            emit({ event: "error", where: `encryption info of ${id}`, ...describe(err) });
        }
    }
    const msg = {
        room_id: event.getRoomId(),
        sender: event.getSender(),
        event_id: id,
        msgtype: content.msgtype ?? null,
        body: content.body ?? null,
        encrypted: event.isEncrypted(),
        shield,
        own: event.getSender() === client.getUserId(),
        server_ts: event.getTs(),
    };
    messages.push(msg);
    if (!msg.own) pendingMessages.push(msg);
    emit({ event: "message", ...msg });
    changed();
}

function onTimeline(event, room, toStartOfTimeline, removed, data) {
    if (toStartOfTimeline || removed || !data?.liveEvent) return;
    recordEvent(event).catch((err) => emit({ event: "error", where: "timeline", ...describe(err) }));
}

function onDecrypted(event) {
    const rec = undecryptable.get(event.getId());
    if (!rec) return;
    if (!event.isDecryptionFailure()) {
        // A late key: an event first seen undecryptable is now readable.
        undecryptable.delete(event.getId());
        recordEvent(event).catch((err) =>
            emit({ event: "error", where: "decrypted", ...describe(err) }),
        );
    } else if ((event.decryptionFailureReason ?? null) !== rec.reason) {
        // Retried, still unreadable, for another reason (e.g. the key came, but from a
        // device this client refuses): report the new reason.
        rec.reason = event.decryptionFailureReason ?? null;
        emit({ event: "undecryptable", ...rec });
        changed();
    }
}

function onMyMembership(room, membership) {
    if (membership !== "invite" || seenInvites.has(room.roomId)) return;
    seenInvites.add(room.roomId);
    const me = room.getMember(client.getUserId());
    const sender = me?.events?.member?.getSender() ?? room.getDMInviter() ?? null;
    const invite = { room_id: room.roomId, sender, is_direct: Boolean(me?.events?.member?.getContent()?.is_direct) };
    pendingInvites.push(invite);
    emit({ event: "invite", ...invite });
    changed();
}

function onSync(state, prev, data) {
    if (state === "ERROR") {
        emit({ event: "error", where: "sync", ...describe(data?.error ?? "sync error") });
    }
    changed();
}

// --------------------------------------------------------------------------- commands

async function ownDeviceOnServer(cli) {
    const me = cli.getUserId();
    const resp = await cli.http.authedRequest(Method.Post, "/keys/query", undefined, {
        device_keys: { [me]: [] },
    });
    return { resp, device: resp.device_keys?.[me]?.[cli.getDeviceId()] };
}

const commands = {
    async login(args) {
        need(args, "homeserver", "user", "password");
        if (client) throw new Error("already logged in");
        const anon = sdk.createClient({ baseUrl: args.homeserver });
        const login = await anon.loginRequest({
            type: "m.login.password",
            identifier: { type: "m.id.user", user: args.user },
            password: args.password,
            initial_device_display_name: args.device_name ?? "helpline interop (js-sdk)",
        });
        anon.stopClient();
        password = args.password;
        client = sdk.createClient({
            baseUrl: args.homeserver,
            userId: login.user_id,
            deviceId: login.device_id,
            accessToken: login.access_token,
        });
        // In-memory crypto store: this process is one device, for its lifetime.
        await client.initRustCrypto({ useIndexedDB: false });
        client.on(RoomEvent.Timeline, onTimeline);
        client.on(MatrixEventEvent.Decrypted, onDecrypted);
        client.on(RoomEvent.MyMembership, onMyMembership);
        client.on(RoomStateEvent.Members, () => changed());
        client.on(RoomStateEvent.Events, () => changed());
        client.on(ClientEvent.Sync, onSync);
        const synced = new Promise((resolve, reject) => {
            const on = (state, prev, data) => {
                if (state === "PREPARED" || state === "SYNCING") {
                    client.off(ClientEvent.Sync, on);
                    resolve();
                } else if (state === "ERROR" && !prev) {
                    client.off(ClientEvent.Sync, on);
                    reject(data?.error ?? new Error("first sync failed"));
                }
            };
            client.on(ClientEvent.Sync, on);
        });
        await client.startClient({ initialSyncLimit: 10 });
        await synced;
        // The crypto's outgoing-request loop uploads the device keys; wait until the
        // server has them, so peers never see this device without keys.
        const cli = client;
        await pollFor("own device keys on the server", args.timeout ?? 20, async () => {
            const { device } = await ownDeviceOnServer(cli);
            return device?.keys ? true : undefined;
        });
        return {
            user_id: login.user_id,
            device_id: login.device_id,
            crypto: client.getCrypto().getVersion(),
        };
    },

    async set_isolation(args) {
        need(args, "mode");
        const crypto = requireClient().getCrypto();
        if (args.mode === "only_signed") {
            crypto.setDeviceIsolationMode(new OnlySignedDevicesIsolationMode());
        } else if (args.mode === "all_devices") {
            crypto.setDeviceIsolationMode(new AllDevicesIsolationMode(false));
        } else {
            throw new Error(`unknown isolation mode ${JSON.stringify(args.mode)}`);
        }
        return { mode: args.mode };
    },

    async bootstrap_cross_signing(args) {
        const cli = requireClient();
        const crypto = cli.getCrypto();
        const me = cli.getUserId();
        let asked = false;
        await crypto.bootstrapCrossSigning({
            setupNewCrossSigning: true,
            authUploadDeviceSigningKeys: async (makeRequest) => {
                try {
                    // Synapse lets an account's first keys through without UIA (MSC3967).
                    return await makeRequest(null);
                } catch (err) {
                    const flows = err?.data?.flows;
                    if (err?.httpStatus !== 401 || !flows) throw err;
                    asked = true;
                    return await makeRequest({
                        type: "m.login.password",
                        identifier: { type: "m.id.user", user: me },
                        password,
                        session: err.data.session,
                    });
                }
            },
        });
        // Proof on the server: the device carries a signature by the self-signing key.
        const deviceId = cli.getDeviceId();
        const signed = await pollFor("own device signature on the server", args.timeout ?? 20, async () => {
            const { resp, device } = await ownDeviceOnServer(cli);
            const ssk = resp.self_signing_keys?.[me];
            const sskId = ssk && Object.keys(ssk.keys)[0];
            const sigs = device?.signatures?.[me] ?? {};
            return sskId && sigs[sskId] ? { self_signing_key: sskId } : undefined;
        });
        // And this device's own crypto agrees (it learns of the signature by a key query).
        const status = await pollFor("own device cross-signed locally", args.timeout ?? 20, async () => {
            const s = await crypto.getDeviceVerificationStatus(me, deviceId);
            return s?.crossSigningVerified ? s : undefined;
        });
        return {
            ready: await crypto.isCrossSigningReady(),
            uia_asked: asked,
            self_signing_key: signed.self_signing_key,
            device_signed_by_owner: Boolean(status?.signedByOwner),
            device_cross_signing_verified: Boolean(status?.crossSigningVerified),
        };
    },

    async create_room(args) {
        const cli = requireClient();
        const resp = await cli.createRoom({
            preset: "trusted_private_chat",
            visibility: "private",
            invite: args.invite ?? [],
            is_direct: Boolean(args.is_direct),
            name: args.name,
            initial_state: [
                { type: "m.room.encryption", state_key: "", content: { algorithm: MEGOLM } },
            ],
        });
        return { room_id: resp.room_id };
    },

    async wait_for_invite(args) {
        requireClient();
        return waitFor("an invite", args.timeout, () => {
            const i = pendingInvites.findIndex(
                (inv) =>
                    (!args.room_id || inv.room_id === args.room_id) &&
                    (!args.sender || inv.sender === args.sender),
            );
            return i < 0 ? undefined : pendingInvites.splice(i, 1)[0];
        });
    },

    async join(args) {
        need(args, "room_id");
        const room = await requireClient().joinRoom(args.room_id);
        return { room_id: room.roomId };
    },

    async wait_for_join(args) {
        need(args, "room_id", "user_id");
        const cli = requireClient();
        return waitFor(`${args.user_id} to join ${args.room_id}`, args.timeout, () => {
            const m = cli.getRoom(args.room_id)?.getMember(args.user_id);
            return m?.membership === "join" ? {} : undefined;
        });
    },

    async wait_for_encryption(args) {
        need(args, "room_id");
        const cli = requireClient();
        const crypto = cli.getCrypto();
        return pollFor(`encryption of ${args.room_id}`, args.timeout, async () => {
            const room = cli.getRoom(args.room_id);
            if (!room || room.getMyMembership() !== "join") return undefined;
            if (!(await crypto.isEncryptionEnabledInRoom(args.room_id))) return undefined;
            const ev = room.currentState.getStateEvents("m.room.encryption", "");
            return { algorithm: ev?.getContent()?.algorithm ?? null };
        });
    },

    async send_text(args) {
        need(args, "room_id", "body");
        const cli = requireClient();
        // js-sdk sends plaintext without complaint into a room it has not yet seen as
        // encrypted: never let a test do that by accident.
        if (!(await cli.getCrypto().isEncryptionEnabledInRoom(args.room_id))) {
            throw new Error(`${args.room_id} is not known to be encrypted: not sending`);
        }
        const resp = await cli.sendMessage(args.room_id, {
            msgtype: args.msgtype ?? "m.text",
            body: args.body,
        });
        return { event_id: resp.event_id };
    },

    async wait_for_message(args) {
        requireClient();
        const matches = (m) =>
            (!args.room_id || m.room_id === args.room_id) &&
            (!args.sender || m.sender === args.sender) &&
            (!args.contains || (m.body ?? "").includes(args.contains));
        return waitFor(
            `a message${args.sender ? ` from ${args.sender}` : ""}${args.room_id ? ` in ${args.room_id}` : ""}`,
            args.timeout,
            () => {
                const i = pendingMessages.findIndex(matches);
                return i < 0 ? undefined : pendingMessages.splice(i, 1)[0];
            },
            () => {
                const bad = [...undecryptable.values()].filter(
                    (u) =>
                        (!args.room_id || u.room_id === args.room_id) &&
                        (!args.sender || u.sender === args.sender),
                );
                const unread = pendingMessages.filter(
                    (m) => !args.room_id || m.room_id === args.room_id,
                );
                return (
                    `undecryptable there: ${JSON.stringify(bad.map((u) => [u.sender, u.reason]))}; ` +
                    `unread there: ${JSON.stringify(unread.map((m) => [m.sender, m.body]))}`
                );
            },
        );
    },

    async device_trust(args) {
        need(args, "user_id");
        const crypto = requireClient().getCrypto();
        const devices = await crypto.getUserDeviceInfo([args.user_id], true);
        const out = {};
        for (const [deviceId] of devices.get(args.user_id) ?? new Map()) {
            const s = await crypto.getDeviceVerificationStatus(args.user_id, deviceId);
            out[deviceId] = {
                signed_by_owner: Boolean(s?.signedByOwner),
                cross_signing_verified: Boolean(s?.crossSigningVerified),
            };
        }
        const user = await crypto.getUserVerificationStatus(args.user_id);
        return {
            devices: out,
            identity_known: Boolean(user?.known),
            needs_approval: Boolean(user?.needsUserApproval),
        };
    },

    async leave(args) {
        need(args, "room_id");
        await requireClient().leave(args.room_id);
        return {};
    },

    async stop() {
        if (client) client.stopClient();
        setTimeout(() => {
            emit({ event: "stopped" });
            process.exit(0);
        }, 10);
        return {};
    },
};

async function handle(line) {
    let req;
    try {
        req = JSON.parse(line);
    } catch (err) {
        emit({ event: "error", where: "protocol", error: `not JSON: ${line.slice(0, 200)}` });
        return;
    }
    const { id, cmd, args = {} } = req;
    const fn = Object.hasOwn(commands, cmd) ? commands[cmd] : null;
    if (!fn) {
        emit({ id, ok: false, error: `unknown command ${JSON.stringify(cmd)}` });
        return;
    }
    try {
        emit({ id, ok: true, result: (await fn(args)) ?? {} });
    } catch (err) {
        emit({ id, ok: false, ...describe(err) });
    }
}

const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
    if (line.trim()) handle(line);
});
rl.on("close", () => {
    // The test process went away (or closed our stdin): never outlive it.
    if (client) client.stopClient();
    process.exit(0);
});
const sdkVersion = JSON.parse(
    readFileSync(new URL("./node_modules/matrix-js-sdk/package.json", import.meta.url), "utf8"),
).version;
emit({ event: "ready", node: process.version, sdk: sdkVersion });
