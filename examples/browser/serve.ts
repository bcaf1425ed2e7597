/**
 * Builds the browser example (esbuild: main.ts and the library's source into one ES module) and serves it on
 * localhost (a secure context, which WebGPU needs), cross-origin isolated (COOP and COEP on every response): only
 * such a page may create a SharedArrayBuffer or a shared WebAssembly memory, which the wasm backend's threads need.
 * `npm run example:browser` runs this file; test/browser.test.ts imports buildExample and serveExample.
 */
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, normalize, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";

const here = fileURLToPath(new URL(".", import.meta.url));
export const defaultOutdir = join(here, "dist");

/** Bundles main.ts into `outdir`/main.js; "grpo-roc" and its subpaths resolve to src/ through tsconfig paths. */
export async function buildExample(outdir = defaultOutdir): Promise<void> {
  await build({
    entryPoints: [join(here, "main.ts")],
    tsconfig: join(here, "tsconfig.json"),
    outdir,
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "chrome113", // the first Chrome with WebGPU
    minify: true,
    // grpo-roc/webgpu imports these only in Node (dawn.node and its temp folder), dynamically: never in a browser.
    external: ["webgpu", "node:*"],
    sourcemap: true,
    logLevel: "warning",
  });
}

const types: Record<string, string> = { ".html": "text/html", ".js": "text/javascript", ".map": "application/json" };

/** Sent with every response, the 404s too: a page is cross-origin isolated only if all it loads says so. */
const isolation = {
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-embedder-policy": "require-corp",
} as const;

/**
 * Serves index.html at / and the bundle under /dist/; `port` 0 picks a free one. `isolated: false` leaves out the
 * COOP and COEP headers (the page then has no shared memory: the wasm backend runs on one thread).
 */
export async function serveExample(
  port = 0,
  outdir = defaultOutdir,
  { isolated = true }: { isolated?: boolean } = {},
): Promise<{ url: string; close: () => Promise<void> }> {
  const headers = isolated ? isolation : {};
  const server = createServer(async (request, response) => {
    const path = new URL(request.url ?? "/", "http://localhost").pathname;
    const file =
      path === "/" || path === "/index.html"
        ? join(here, "index.html")
        : path.startsWith("/dist/")
          ? normalize(join(outdir, path.slice("/dist/".length)))
          : undefined;
    try {
      if (file === undefined || !(file === join(here, "index.html") || file.startsWith(outdir + sep)))
        throw new Error("not found");
      const body = await readFile(file);
      response.writeHead(200, {
        ...headers,
        "content-type": types[extname(file)] ?? "application/octet-stream",
        "cache-control": "no-store",
      });
      response.end(body);
    } catch {
      response.writeHead(404, { ...headers, "content-type": "text/plain" }).end("not found");
    }
  });
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(port, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  return { url, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await buildExample();
  const { url } = await serveExample(Number(process.env.PORT ?? 8080));
  console.log(
    `grpo-roc browser example: open ${url} in a browser with WebGPU (Chrome or Edge 113+; recent Firefox and Safari), or without it for the WebAssembly backend.`,
  );
  console.log(
    "Headless Chromium: chromium --headless --enable-unsafe-webgpu (CPU-only machines get SwiftShader). Ctrl-C stops.",
  );
}
