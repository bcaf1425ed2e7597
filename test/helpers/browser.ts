/**
 * Headless Chromium for tests: Debian's /usr/bin/chromium (or CHROMIUM_PATH) driven by playwright-core, which
 * downloads no browser of its own. Playwright adds --headless and a fresh --user-data-dir itself.
 */
import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";

export const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const chromiumFound = existsSync(chromiumPath);

/**
 * As root, on a machine whose network reaches only package registries: no sandbox (it refuses to start as root
 * with one), and none of Chromium's background connections (refused here, many at a time, at every start).
 */
export const BASE_FLAGS = [
  "--no-sandbox",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
] as const;

/**
 * WebGPU in headless Chromium without a GPU. --enable-unsafe-webgpu is the one flag needed: Chromium then offers
 * SwiftShader (its bundled CPU Vulkan, /usr/lib/chromium/libvk_swiftshader.so) as a fallback adapter, vendor
 * "google", architecture "swiftshader". Without it requestAdapter() gives null ("No available adapters."), with or
 * without --headless=new, --enable-unsafe-swiftshader, --use-angle=swiftshader|vulkan,
 * --enable-features=Vulkan, --use-vulkan=native|swiftshader or --use-webgpu-adapter=swiftshader. It works with
 * and without --disable-gpu. Mesa's lavapipe is never picked, whatever the flags; pointing VK_ICD_FILENAMES at it
 * hides SwiftShader and WebGPU fails ("Failed to create WebGPU Context Provider").
 */
export const WEBGPU_FLAGS = ["--enable-unsafe-webgpu"] as const;

export function launchChromium(flags: readonly string[]): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: [...BASE_FLAGS, ...flags],
    timeout: 60_000,
  });
}

/** CI is set (and not "0" / "false"), as in test/conformance/targets.ts. */
export const inCi = (() => {
  const ci = process.env.CI;
  return ci !== undefined && ci !== "" && ci !== "0" && ci.toLowerCase() !== "false";
})();
