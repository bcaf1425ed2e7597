/**
 * verl 1dda039's changed loss terms (golden README, "Version traps" 1, 2 and 6): agg_loss's token-sum and its
 * seq-mean-token-sum-norm, and kl_penalty's "+" kinds (verl2_policy_loss.json), plus the entropy-only call
 * (tokenEntropy / tokenEntropyBackward) against verl_entropy.json and trl_entropy.json.
 */
import { describe, expect, it } from "vitest";
import {
  aggregate,
  type Aggregation,
  type KlKind,
  klPenalty,
  policyLoss,
  tokenEntropy,
  tokenEntropyBackward,
  ValidationError,
  type VerlKlName,
} from "../src/index.js";
import { expectAllClose, FLOAT64_TOLERANCE, loadGolden, type Tolerance } from "./helpers/golden.js";
import { expectPatchedKlPenalty, verl2TermCase, verlActorLoss } from "./helpers/golden-loss.js";
import { matrix } from "./helpers/matrices.js";

const GRADIENT_TOLERANCE: Tolerance = { rtol: 1e-10, atol: 1e-12 };

/**
 * agg_loss's kwargs (loss_agg_mode, and dp_size, batch_num_tokens, global_batch_size, loss_scale_factor: the actor's
 * global_batch_info, which verl's engine fills in) as the aggregation and normaliser fromVerlConfig gives at verl
 * 1dda039 (the default verlVersion).
 */
function aggregationOf(h: Record<string, unknown>, mode = h.loss_agg_mode as string) {
  const { loss_agg_mode: _mode, ...globalBatchInfo } = h;
  const options = verlActorLoss({ loss_agg_mode: mode, global_batch_info: globalBatchInfo });
  return { aggregation: options.aggregation!, normalizer: options.normalizer! };
}

const verl2 = loadGolden("verl2_policy_loss.json").cases;

describe("verl 1dda039 agg_loss (verl2_policy_loss.json, verl.pl.agg_loss.*)", () => {
  const cases = verl2.filter((c) => c.function === "agg_loss");
  const matched = cases.filter((c) => !("error" in c.outputs));
  it("has token-sum cases and the dp_size error case", () => {
    expect(matched.length).toBeGreaterThanOrEqual(3);
    expect(cases.some((c) => "error" in c.outputs)).toBe(true);
  });

  // Edge cases included: token-sum reads where(mask, L, 0), so garbage in the padding is harmless in verl too, and an
  // all-masked batch gives 0 in both.
  it.each(matched.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const inputs = c.inputs as { loss_mat: number[][]; loss_mask: number[][] };
    const result = aggregate(matrix(inputs.loss_mat), {
      mask: matrix(inputs.loss_mask),
      ...aggregationOf(c.hyperparameters),
    });
    expectAllClose([result.value], [c.outputs.loss as number], FLOAT64_TOLERANCE, "loss");
    expectAllClose(result.grad, (c.outputs.grad_loss_mat as number[][]).flat(), GRADIENT_TOLERANCE, "grad_loss_mat");
  });

  it.each(cases.filter((c) => "error" in c.outputs).map((c) => [c.id, c] as const))(
    "%s raises in verl and here, naming the missing count",
    (_id, c) => {
      const inputs = c.inputs as { loss_mat: number[][]; loss_mask: number[][] };
      const call = () =>
        aggregate(matrix(inputs.loss_mat), {
          mask: matrix(inputs.loss_mask),
          ...aggregationOf(c.hyperparameters),
        });
      expect(c.outputs.error).toMatch(/global_batch_size is required when dp_size > 1/);
      expect(call).toThrow(ValidationError);
      expect(call).toThrow(/options\.normalizer\.sequences.*dpSize 2.*global_batch_size is required/);
    },
  );
});

describe("seq-mean-token-sum-norm at 1dda039 = seq-mean-token-sum / (loss_scale_factor ?? T)", () => {
  // Trap 1: 1dda039 runs seq-mean-token-sum's branch, then divides by the length. seq-mean-token-sum itself did not
  // change, so its b178a3c golden values (verl_agg_loss.json) divided by the length are 1dda039's values.
  const sums = loadGolden("verl_agg_loss.json").cases.filter(
    (c) => c.hyperparameters.loss_agg_mode === "seq-mean-token-sum" && !c.edge_case,
  );
  it.each(sums.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const inputs = c.inputs as { loss_mat: number[][]; loss_mask: number[][] };
    const { aggregation, normalizer } = aggregationOf(c.hyperparameters, "seq-mean-token-sum-norm");
    expect(aggregation).toBe("seq-mean-token-sum-norm");
    const length = normalizer.length ?? inputs.loss_mat[0]!.length;
    const options = { mask: matrix(inputs.loss_mask), aggregation, normalizer } as const;
    const dpOnly = normalizer.dpSize !== undefined && normalizer.sequences === undefined;
    if (dpOnly) {
      // dp_size > 1 without global_batch_size: 1dda039 raises; b178a3c scaled the local count.
      expect(() => aggregate(matrix(inputs.loss_mat), options)).toThrow(/options\.normalizer\.sequences/);
      return;
    }
    const result = aggregate(matrix(inputs.loss_mat), options);
    expectAllClose([result.value], [(c.outputs.loss as number) / length], FLOAT64_TOLERANCE, "loss");
    const grad = (c.outputs.grad_loss_mat as number[][]).flat().map((g) => g / length);
    expectAllClose(result.grad, grad, GRADIENT_TOLERANCE, "grad_loss_mat");
  });

  it("global_batch_size counts empty rows when given (trap 6): the same sum over more sequences", () => {
    const loss = matrix([
      [1, 2, 0],
      [0, 0, 0],
    ]);
    const mask = matrix([
      [1, 1, 0],
      [0, 0, 0],
    ]);
    const own = aggregate(loss, { mask, aggregation: "seq-mean-token-sum-norm" });
    const global = aggregate(loss, { mask, aggregation: "seq-mean-token-sum-norm", normalizer: { sequences: 2 } });
    expect(own.value).toBe(3 / 1 / 3);
    expect(global.value).toBe(3 / 2 / 3);
    const old = aggregate(loss, {
      mask,
      aggregation: "seq-mean-token-sum-norm",
      normalizer: { verlVersion: "b178a3c" },
    });
    expect(old.value).toBe(3 / 3);
  });

  it("dp_size > 1 without batch_num_tokens raises for token-mean at 1dda039, and scales the local count at b178a3c", () => {
    const loss = matrix([[1, 2]]);
    expect(() => aggregate(loss, { aggregation: "token-mean", normalizer: { dpSize: 2 } })).toThrow(
      /options\.normalizer\.tokens.*batch_num_tokens is required when dp_size > 1/,
    );
    expect(aggregate(loss, { aggregation: "token-mean", normalizer: { dpSize: 2, tokens: 4 } }).value).toBe(1.5);
    expect(
      aggregate(loss, { aggregation: "token-mean", normalizer: { dpSize: 2, verlVersion: "b178a3c" } }).value,
    ).toBe(3);
    // token-sum ignores every count and only multiplies by dp_size.
    expect(aggregate(loss, { aggregation: "token-sum", normalizer: { dpSize: 2 } }).value).toBe(6);
  });
});

describe('verl 1dda039 kl_penalty "+" kinds (straight-through)', () => {
  /** actor.kl_loss_type as fromVerlConfig translates it. */
  const kindOf = (name: string): KlKind => verlActorLoss({ use_kl_loss: true, kl_loss_type: name }).kl!.kind as KlKind;

  const cases = verl2.filter((c) => c.function === "kl_penalty");
  it("covers k1+, kl+ and k2+", () => expect(cases.length).toBeGreaterThanOrEqual(3));

  it.each(cases.map((c) => [c.id, c] as const))("%s (verl2_policy_loss.json)", (_id, c) => {
    const inputs = c.inputs as { logprob: number[][]; ref_logprob: number[][]; response_mask: number[][] };
    const name = c.hyperparameters.kl_penalty as string;
    const logp = inputs.logprob.flat();
    const ref = inputs.ref_logprob.flat();
    // klPenalty takes verl's names as they are.
    const values = logp.map((lp, i) => klPenalty(name as VerlKlName, true, lp, ref[i]!));
    expectAllClose(
      values.map((v) => v.value),
      (c.outputs.kld as number[][]).flat(),
      FLOAT64_TOLERANCE,
      "kld",
    );
    expectAllClose(
      values.map((v) => v.dLogp),
      (c.outputs.grad_logprob as number[][]).flat(),
      GRADIENT_TOLERANCE,
      "grad_logprob",
    );
    // The KL loss through policyLoss: zero advantages leave the KL term alone.
    const shape = [inputs.logprob.length, inputs.logprob[0]!.length] as const;
    const mode = c.hyperparameters.kl_loss_agg_mode as Aggregation;
    // The KL loss as verl's actor runs it (use_kl_loss, kl_loss_type, kl_loss_coef 1, loss_agg_mode): fromVerlConfig.
    const { inputs: klInputs, options } = verl2TermCase(c);
    expect(options.kl).toEqual({ kind: kindOf(name), coef: 1, clamp: true });
    const translated = policyLoss(klInputs, options);
    const result = policyLoss(
      {
        logp: matrix(inputs.logprob),
        oldLogp: matrix(inputs.logprob),
        refLogp: matrix(inputs.ref_logprob),
        advantages: new Float64Array(shape[0]),
        mask: matrix(inputs.response_mask),
      },
      { aggregation: mode, kl: { kind: kindOf(name), coef: 1 } },
    );
    const klLoss = c.outputs.kl_loss as Record<string, number>;
    const gradKlLoss = c.outputs.grad_kl_loss as Record<string, number[][]>;
    expectAllClose([result.loss], [klLoss[mode]!], FLOAT64_TOLERANCE, `kl_loss[${mode}]`);
    expectAllClose(result.grad, gradKlLoss[mode]!.flat(), GRADIENT_TOLERANCE, `grad_kl_loss[${mode}]`);
    expectAllClose([translated.loss], [klLoss[mode]!], FLOAT64_TOLERANCE, `kl_loss[${mode}] (translated)`);
    expectAllClose(translated.grad, gradKlLoss[mode]!.flat(), GRADIENT_TOLERANCE, `grad_kl_loss (translated)`);
  });

  // verl b178a3c raised NotImplementedError for these; the file records the values of its own patched formula
  // (kind.rstrip('+')), which is what 1dda039 computes.
  const patched = loadGolden("verl_kl.json").cases.filter((c) => c.function === "kl_penalty" && "error" in c.outputs);
  it.each(patched.map((c) => [c.id, c] as const))("%s (verl_kl.json outputs_patched)", (_id, c) => {
    expectPatchedKlPenalty(c, c.hyperparameters.kl_penalty as VerlKlName, true, GRADIENT_TOLERANCE);
  });

  it("every + kind has its base kind's value (clamps included) and the slope logp − refLogp", () => {
    for (const base of ["k1", "abs", "k2", "k3"] as const) {
      for (const [logp, ref] of [
        [-1, -1.5],
        [-0.2, -30],
        [-30, -0.2],
        [-3, -3],
      ] as const) {
        for (const clamp of [true, false]) {
          const plain = klPenalty(base, clamp, logp, ref);
          const plus = klPenalty(`${base}+`, clamp, logp, ref);
          expect(plus.value).toBe(plain.value);
          expect(plus.dLogp).toBe(logp - ref);
        }
      }
    }
  });
});

describe("entropy-only: tokenEntropy / tokenEntropyBackward", () => {
  const verl = loadGolden("verl_entropy.json").cases;

  it.each(verl.filter((c) => c.function === "compute_entropy_loss").map((c) => [c.id, c] as const))(
    "%s (verl_entropy.json, verl b178a3c)",
    (_id, c) => {
      const inputs = c.inputs as { logits: number[][][]; response_mask: number[][] };
      const forward = tokenEntropy(inputs.logits);
      const loss = aggregate(
        { data: forward.entropy, shape: forward.shape },
        {
          mask: matrix(inputs.response_mask),
          aggregation: c.hyperparameters.loss_agg_mode as Aggregation,
          normalizer: { verlVersion: "b178a3c" },
        },
      );
      expectAllClose([loss.value], [c.outputs.entropy_loss as number], FLOAT64_TOLERANCE, "entropy_loss");
      const grad = tokenEntropyBackward(inputs.logits, { gradEntropy: { data: loss.grad, shape: forward.shape } });
      expectAllClose(grad.data, (c.outputs.grad_logits as number[][][]).flat(2), GRADIENT_TOLERANCE, "grad_logits");
    },
  );

  it("verl's −Infinity edge case: finite here, the entropy without those entries (verl gives NaN)", () => {
    const c = verl.find((k) => k.function === "entropy_from_logits" && k.edge_case)!;
    const logits = (c.inputs as { logits: number[][][] }).logits;
    const forward = tokenEntropy(logits);
    logits.flat().forEach((position, i) => {
      const finite = position.filter((v) => v !== -Infinity);
      expect(forward.entropy[i]).toBeCloseTo(tokenEntropy([[finite]]).entropy[0]!, 12);
    });
  });

  const trl = loadGolden("trl_entropy.json").cases.filter((c) => c.function === "entropy_from_logits");
  it.each(trl.map((c) => [c.id, c] as const))("%s (trl_entropy.json)", (_id, c) => {
    const logits = (c.inputs as { logits: number[][][] }).logits;
    const forward = tokenEntropy(logits);
    expectAllClose(forward.entropy, (c.outputs.entropy as number[][]).flat(), FLOAT64_TOLERANCE, "entropy");
    const ones = { data: new Float64Array(forward.entropy.length).fill(1), shape: forward.shape };
    const grad = tokenEntropyBackward(logits, { gradEntropy: ones });
    expectAllClose(
      grad.data,
      (c.outputs.grad_logits_of_sum as number[][][]).flat(2),
      GRADIENT_TOLERANCE,
      "grad_logits_of_sum",
    );
  });
});
