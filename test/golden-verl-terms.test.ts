import { describe, expect, it } from "vitest";
import {
  aggregate,
  fromVerlConfig,
  type KlKind,
  klPenalty,
  type PolicyLossOptionsInput,
  tokenLogProbs,
  tokenLogProbsBackward,
  type VerlConfig,
} from "../src/index.js";
import { expectAllClose, FLOAT64_TOLERANCE, loadGolden, type Tolerance } from "./helpers/golden.js";
import { expectPatchedKlPenalty } from "./helpers/golden-loss.js";
import { matrix } from "./helpers/matrices.js";

const GRADIENT_TOLERANCE: Tolerance = { rtol: 1e-10, atol: 1e-12 };

/**
 * The policy-loss options fromVerlConfig gives for an ActorConfig, as verl b178a3c computes them (these files come
 * from it): every term below reads its part of them.
 */
const actorOptions = (actor: NonNullable<VerlConfig["actor"]>): PolicyLossOptionsInput =>
  fromVerlConfig({ actor }, { verlVersion: "b178a3c" }).loss!;

describe("verl agg_loss (verl_agg_loss.json)", () => {
  const cases = loadGolden("verl_agg_loss.json").cases.filter((c) => c.function === "agg_loss");
  /**
   * agg_loss's kwargs are the actor's global_batch_info (dp_size, batch_num_tokens, global_batch_size,
   * loss_scale_factor), which verl's engine fills in, and its loss_agg_mode.
   */
  const optionsOf = (h: Record<string, unknown>) => {
    const { loss_agg_mode, ...globalBatchInfo } = h;
    return actorOptions({ loss_agg_mode: loss_agg_mode as string, global_batch_info: globalBatchInfo });
  };

  it.each(cases.filter((c) => !c.edge_case).map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const inputs = c.inputs as { loss_mat: number[][]; loss_mask: number[][] };
    const options = optionsOf(c.hyperparameters);
    const result = aggregate(matrix(inputs.loss_mat), {
      mask: matrix(inputs.loss_mask),
      aggregation: options.aggregation!,
      normalizer: options.normalizer!,
    });
    expectAllClose([result.value], [c.outputs.loss as number], FLOAT64_TOLERANCE, "loss");
    expectAllClose(result.grad, (c.outputs.grad_loss_mat as number[][]).flat(), GRADIENT_TOLERANCE, "grad_loss_mat");
  });

  // verl's edge cases give NaN; grpo-roc's documented behaviour differs on purpose (see README, "Bad input").
  it("non-finite values at masked positions never leak (verl propagates NaN in the seq-mean modes)", () => {
    const c = cases.find((k) => k.id.startsWith("verl.agg.nonfinite_in_padding"))!;
    const inputs = c.inputs as { loss_mat: number[][]; loss_mask: number[][] };
    const finiteOnly = inputs.loss_mat.map((row, b) => row.map((v, t) => (inputs.loss_mask[b]![t] ? v : 0)));
    const withGarbage = aggregate(matrix(inputs.loss_mat), {
      mask: matrix(inputs.loss_mask),
      aggregation: "seq-mean-token-sum-norm",
    });
    const clean = aggregate(matrix(finiteOnly), {
      mask: matrix(inputs.loss_mask),
      aggregation: "seq-mean-token-sum-norm",
    });
    expect(inputs.loss_mat.flat().some((v) => !Number.isFinite(v))).toBe(true);
    expect(Number.isFinite(withGarbage.value)).toBe(true);
    expect(withGarbage.value).toBe(clean.value);
  });

  it("a mask that selects nothing gives 0 and a zero gradient in every mode (verl: 0/0 = NaN)", () => {
    for (const mode of [
      "token-mean",
      "token-sum",
      "seq-mean-token-sum",
      "seq-mean-token-mean",
      "seq-mean-token-sum-norm",
      "grpo",
      "bnpo",
      "dr_grpo",
      "dapo",
    ] as const) {
      const result = aggregate(
        matrix([
          [1, 2, 3],
          [4, 5, 6],
        ]),
        {
          mask: matrix([
            [0, 0, 0],
            [0, 0, 0],
          ]),
          aggregation: mode,
        },
      );
      expect(result.value, mode).toBe(0);
      expect(
        Array.from(result.grad).every((g) => g === 0),
        mode,
      ).toBe(true);
    }
  });
});

describe("verl kl_penalty and KL loss (verl_kl.json)", () => {
  const all = loadGolden("verl_kl.json").cases.filter((c) => c.function === "kl_penalty");
  const cases = all.filter((c) => !("error" in c.outputs));
  /** actor.kl_loss_type is kl_penalty's kind: the translation's estimator and its clamps. */
  const klOf = (kind: string) => actorOptions({ use_kl_loss: true, kl_loss_type: kind }).kl!;
  it("covers abs, mse/k2, low_var_kl/k3", () => expect(cases.length).toBeGreaterThanOrEqual(5));

  // verl b178a3c raised NotImplementedError for the "+" kinds (this file's `outputs.error`): the translation at
  // b178a3c refuses them as verl does. At 1dda039 they are the straight-through kinds, whose values the file records
  // as `outputs_patched` (b178a3c's own formula with kind.rstrip('+'), which is what 1dda039 computes).
  const plus = all.filter((c) => (c.hyperparameters.kl_penalty as string).endsWith("+"));
  it("has the + kinds (k1+, mse+)", () => expect(plus.length).toBeGreaterThanOrEqual(2));
  it.each(plus.map((c) => [c.id, c] as const))("%s: refused at b178a3c, verl 1dda039's values otherwise", (_id, c) => {
    const name = c.hyperparameters.kl_penalty as string;
    expect(() => klOf(name)).toThrow(/config\.actor\.kl_loss_type: "[\w+]+" does not exist at verl b178a3c/);
    const kl = fromVerlConfig({ actor: { use_kl_loss: true, kl_loss_type: name } }).loss!.kl!;
    expect(kl.kind).toMatch(/\+$/);
    expectPatchedKlPenalty(c, kl.kind as KlKind, kl.clamp ?? true, GRADIENT_TOLERANCE);
  });

  it.each(cases.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const inputs = c.inputs as { logprob: number[][]; ref_logprob: number[][]; response_mask: number[][] };
    const kl = klOf(c.hyperparameters.kl_penalty as string);
    const kind = kl.kind as "k1" | "abs" | "k2" | "k3";
    const kld: number[] = [];
    const slope: number[] = [];
    inputs.logprob.flat().forEach((lp, i) => {
      const value = klPenalty(kind, kl.clamp ?? true, lp, inputs.ref_logprob.flat()[i]!);
      kld.push(value.value);
      slope.push(value.dLogp);
    });
    expectAllClose(kld, (c.outputs.kld as number[][]).flat(), FLOAT64_TOLERANCE, "kld");
    expectAllClose(slope, (c.outputs.grad_logprob as number[][]).flat(), GRADIENT_TOLERANCE, "grad_logprob");
    for (const mode of [
      "token-mean",
      "seq-mean-token-sum",
      "seq-mean-token-mean",
      "seq-mean-token-sum-norm",
    ] as const) {
      const loss = aggregate(
        { data: Float64Array.from(kld), shape: [inputs.logprob.length, inputs.logprob[0]!.length] },
        { mask: matrix(inputs.response_mask), aggregation: mode, normalizer: { verlVersion: "b178a3c" } },
      );
      expectAllClose([loss.value], [c.outputs[`kl_loss[${mode}]`] as number], FLOAT64_TOLERANCE, `kl_loss[${mode}]`);
      const grad = loss.grad.map((w, i) => w * slope[i]!);
      expectAllClose(
        grad,
        (c.outputs[`grad_kl_loss[${mode}]`] as number[][]).flat(),
        GRADIENT_TOLERANCE,
        `grad_kl_loss[${mode}]`,
      );
    }
  });
});

describe("verl entropy and log-probs from logits (verl_entropy.json)", () => {
  const cases = loadGolden("verl_entropy.json").cases;
  const byFunction = (f: string) => cases.filter((c) => c.function === f && !c.edge_case);

  it.each(byFunction("compute_entropy_loss").map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const inputs = c.inputs as { logits: number[][][]; response_mask: number[][] };
    const tokens = inputs.response_mask.map((row) => row.map(() => 0));
    const forward = tokenLogProbs(inputs.logits, tokens, { entropy: true });
    // dp_actor aggregates the entropy with loss_agg_mode: the translation's entropyAggregation.
    const options = actorOptions({ loss_agg_mode: c.hyperparameters.loss_agg_mode as string, entropy_coeff: 0.01 });
    const loss = aggregate(
      { data: forward.entropy!, shape: forward.shape },
      { mask: matrix(inputs.response_mask), aggregation: options.entropyAggregation!, normalizer: options.normalizer },
    );
    expectAllClose([loss.value], [c.outputs.entropy_loss as number], FLOAT64_TOLERANCE, "entropy_loss");
    const grad = tokenLogProbsBackward(inputs.logits, tokens, {
      gradLogp: { data: new Float64Array(loss.grad.length), shape: forward.shape },
      gradEntropy: { data: loss.grad, shape: forward.shape },
    });
    expectAllClose(grad.data, (c.outputs.grad_logits as number[][][]).flat(2), GRADIENT_TOLERANCE, "grad_logits");
  });

  it.each(byFunction("logprobs_from_logits_v2").map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const inputs = c.inputs as { logits: number[][][]; labels: number[][] };
    const forward = tokenLogProbs(inputs.logits, matrix(inputs.labels));
    expectAllClose(forward.logp, (c.outputs.log_prob as number[][]).flat(), FLOAT64_TOLERANCE, "log_prob");
    const ones = { data: new Float64Array(forward.logp.length).fill(1), shape: forward.shape };
    const grad = tokenLogProbsBackward(inputs.logits, matrix(inputs.labels), { gradLogp: ones });
    expectAllClose(
      grad.data,
      (c.outputs.grad_logits_of_sum as number[][][]).flat(2),
      GRADIENT_TOLERANCE,
      "grad_logits_of_sum",
    );
  });

  it("−Infinity logits work: entropy equals that of the distribution without them (verl gives NaN)", () => {
    const c = cases.find((k) => k.function === "entropy_from_logits" && k.edge_case)!;
    const logits = (c.inputs as { logits: number[][][] }).logits;
    const tokens = logits.map((row) => row.map((position) => position.findIndex((v) => v !== -Infinity)));
    const forward = tokenLogProbs(logits, tokens, { entropy: true });
    const flat = logits.flat();
    expect(flat.some((position) => position.includes(-Infinity))).toBe(true);
    flat.forEach((position, i) => {
      const finite = position.filter((v) => v !== -Infinity);
      const reduced = tokenLogProbs([[finite]], [[0]], { entropy: true });
      expect(forward.entropy![i]).toBeCloseTo(reduced.entropy![0]!, 12);
      expect(Number.isFinite(forward.entropy![i])).toBe(true);
    });
  });
});

describe("TRL entropy and selective_log_softmax (trl_entropy.json)", () => {
  const cases = loadGolden("trl_entropy.json").cases;

  it.each(cases.filter((c) => c.function === "entropy_from_logits").map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const logits = (c.inputs as { logits: number[][][] }).logits;
    const tokens = logits.map((row) => row.map(() => 0));
    const forward = tokenLogProbs(logits, tokens, { entropy: true });
    expectAllClose(forward.entropy!, (c.outputs.entropy as number[][]).flat(), FLOAT64_TOLERANCE, "entropy");
    const grad = tokenLogProbsBackward(logits, tokens, {
      gradLogp: { data: new Float64Array(forward.logp.length), shape: forward.shape },
      gradEntropy: { data: new Float64Array(forward.logp.length).fill(1), shape: forward.shape },
    });
    expectAllClose(
      grad.data,
      (c.outputs.grad_logits_of_sum as number[][][]).flat(2),
      GRADIENT_TOLERANCE,
      "grad_logits_of_sum",
    );
  });

  it.each(cases.filter((c) => c.function === "selective_log_softmax").map((c) => [c.id, c] as const))(
    "%s",
    (_id, c) => {
      const inputs = c.inputs as { logits: number[][][]; index: number[][] };
      const forward = tokenLogProbs(inputs.logits, matrix(inputs.index));
      expectAllClose(forward.logp, (c.outputs.log_prob as number[][]).flat(), FLOAT64_TOLERANCE, "log_prob");
      const ones = { data: new Float64Array(forward.logp.length).fill(1), shape: forward.shape };
      const grad = tokenLogProbsBackward(inputs.logits, matrix(inputs.index), { gradLogp: ones });
      expectAllClose(
        grad.data,
        (c.outputs.grad_logits_of_sum as number[][][]).flat(2),
        GRADIENT_TOLERANCE,
        "grad_logits_of_sum",
      );
    },
  );
});
