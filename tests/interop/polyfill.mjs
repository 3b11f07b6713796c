// Loaded before matrix-js-sdk. js-sdk 43 targets Node 22 and calls Promise.withResolvers
// (ES2024), which Node 20 lacks; without it the Rust-crypto outgoing-request loop dies
// with a single INFO log line and the device's keys are never uploaded.
if (typeof Promise.withResolvers !== "function") {
    Object.defineProperty(Promise, "withResolvers", {
        configurable: true,
        writable: true,
        value: function withResolvers() {
            let resolve;
            let reject;
            const promise = new this((res, rej) => {
                resolve = res;
                reject = rej;
            });
            return { promise, resolve, reject };
        },
    });
}
