import { afterAll, it } from "vitest";
import { releaseWebGpuBackend, webgpuBackend } from "../../src/webgpu/index.js";
afterAll(() => releaseWebGpuBackend());
it("scratch", async () => {
  const cases: [number[], number, number][] = [
    [[3e38, 3e38], 0, 1],
    [[3.4e38, 3.4e38, 3.4e38, 3.4e38], 1, 1],
    [[3.4e38, 3.4e38, 3.4e38, 3.4e38], 1, 0.5],
    [[1e30, -1e30, 0, 1e30], 1, 1],
    [[1e30, -1e30, 0, 1e30], 0, 2],
    [[0, -1e30, 0, -Infinity], 1, 1],
    [[3.4e38, -3.4e38], 1, 1],
  ];
  for (const [row, token, temperature] of cases) {
    const logits = { data: Float32Array.from(row), shape: [1, 1, row.length] as [number, number, number] };
    try {
      const f = await webgpuBackend.tokenLogProbs(logits, [[token]], { temperature, entropy: true });
      const b = await webgpuBackend.tokenLogProbsBackward(logits, [[token]], {
        temperature,
        gradLogp: [[1]],
        gradEntropy: [[0.5]],
      });
      const s = await webgpuBackend.tokenLogProbsBackward(logits, [[token]], {
        temperature,
        gradLogp: [[1]],
        gradEntropy: [[0.5]],
        saved: f,
      });
      console.log(
        row,
        token,
        temperature,
        f.logp[0],
        f.entropy![0],
        f.logSumExp[0],
        Array.from(b.data),
        Array.from(s.data),
      );
    } catch (e) {
      console.log(row, token, temperature, String(e));
    }
  }
});
