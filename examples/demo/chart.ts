/**
 * The paper's figure in miniature: two panels over RL steps, held-out accuracy and the tool-error ratio inside
 * correct rollouts, GRPO against GRPO-RoC: the mean over seeds bold, each seed faint. Drawn with Observable Plot on
 * linkedom's DOM (no browser) and rasterised to PNG by resvg.
 */
import * as Plot from "@observablehq/plot";
import { Resvg } from "@resvg/resvg-js";
import { parseHTML } from "linkedom";
import { METHOD_LABEL, type CurvePoint } from "./report.js";

const PANEL = { width: 460, height: 320 };
const TITLE_HEIGHT = 44;
const COLORS = { grpo: "#d62728", roc: "#1f77b4" } as const;
const FONT = "DejaVu Sans, sans-serif";

function panel(points: readonly CurvePoint[], metric: "accuracy" | "toolErrorRatioCorrect", label: string): string {
  // linkedom's document stands in for a browser's.
  const { document } = parseHTML("<!DOCTYPE html><html><body></body></html>");
  const rows = points
    .filter((p) => p[metric] !== null)
    .map((p) => ({ ...p, value: p[metric] as number, label: METHOD_LABEL[p.method], run: `${p.method}/${p.seed}` }));
  const seeds = rows.filter((p) => p.seed !== "mean");
  const means = rows.filter((p) => p.seed === "mean");
  const svg = Plot.plot({
    // The tsconfig has no DOM types, hence the casts.
    document: document as unknown as NonNullable<Plot.PlotOptions["document"]>,
    width: PANEL.width,
    height: PANEL.height,
    marginRight: 24,
    style: { fontFamily: FONT, fontSize: "11px", background: "white" },
    x: { label: "RL step", grid: true },
    // Accuracy on 0–1; the error ratio zoomed to its own range (it starts near 0.3), from 0.
    y: metric === "accuracy" ? { label, grid: true, domain: [0, 1] } : { label, grid: true, zero: true, nice: true },
    color: { domain: ["GRPO", "GRPO-RoC"], range: [COLORS.grpo, COLORS.roc] },
    marks: [
      Plot.line(seeds, { x: "step", y: "value", z: "run", stroke: "label", strokeOpacity: 0.22, strokeWidth: 1 }),
      Plot.line(means, { x: "step", y: "value", z: "label", stroke: "label", strokeWidth: 2.5 }),
      Plot.dot(means, { x: "step", y: "value", fill: "label", r: 2.5 }),
    ],
  }) as unknown as { outerHTML: string };
  return svg.outerHTML;
}

/** Both panels side by side in one standalone SVG document. */
export function figureSvg(points: readonly CurvePoint[], title: string): string {
  const width = 2 * PANEL.width;
  const height = PANEL.height + TITLE_HEIGHT;
  const place = (inner: string, x: number) => inner.replace(/^<svg\b/, `<svg x="${x}" y="${TITLE_HEIGHT}"`);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="${FONT}">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="12" y="18" font-size="14" font-weight="bold">${escapeXml(title)}</text>`,
    `<text x="12" y="36" font-size="11" fill="#555">held-out evaluation; bold: mean over seeds, faint: each seed</text>`,
    legend(width - 240, 14),
    place(panel(points, "accuracy", "accuracy"), 0),
    place(panel(points, "toolErrorRatioCorrect", "tool-error ratio in correct rollouts (lower: cleaner)"), PANEL.width),
    `</svg>`,
  ].join("\n");
}

/** Colour key, top right (labels at the line ends would overlap where the curves meet). */
function legend(x: number, y: number): string {
  return (Object.keys(COLORS) as (keyof typeof COLORS)[])
    .map((method, i) => {
      const top = y + 16 * i;
      return (
        `<line x1="${x}" x2="${x + 22}" y1="${top}" y2="${top}" stroke="${COLORS[method]}" stroke-width="2.5"/>` +
        `<text x="${x + 28}" y="${top + 4}" font-size="11">${METHOD_LABEL[method]}${method === "roc" ? " (2G sampled → G kept)" : " (G rollouts)"}</text>`
      );
    })
    .join("\n");
}

export function svgToPng(svg: string): Buffer {
  const resvg = new Resvg(svg, {
    background: "white",
    fitTo: { mode: "zoom", value: 2 },
    font: { loadSystemFonts: true, defaultFontFamily: "DejaVu Sans" },
  });
  return resvg.render().asPng();
}

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}
