/**
 * The policy: a tiny autoregressive model in TensorFlow.js. The logits for the next token are a function of the
 * prefix only, read through 18 slots:
 *
 *   the last 4 tokens          what was just written
 *   the question's 5 tokens    "a a * b b" (what a call has to copy)
 *   the latest tool output     up to 4 tokens after the last OUT (what the answer has to copy)
 *   2 copy pointers            the question token and the output token at the offset since the last structural
 *                              token: a hard-wired stand-in for the attention head a transformer would learn to
 *                              copy with (without it the warm start needs minutes, not seconds, on a CPU)
 *   phase × offset             the last structural token (=, CALL, END, OUT, /OUT, ANS…) and how far back it is
 *   calls, failed calls        how many so far (0–3)
 *
 * Each slot value is one-hot; the network is an MLP over them: h1 = relu(Σ_slots E[slot value] + b1), h2 =
 * relu(h1·W2 + b2), logits = h2·W3 + b3. Slots instead of attention or a recurrence keep every position independent,
 * so a [B, L] batch is one [B·L, ·] forward pass, fast enough on tfjs's plain-JavaScript cpu backend. About 85K
 * parameters.
 */
import * as tf from "@tensorflow/tfjs";
import type { Rng } from "./rng.js";
import { PROMPT_LENGTH } from "./tasks.js";
import { T, VOCAB_SIZE } from "./tokens.js";

const WINDOW = 4;
const QUESTION_SLOTS = PROMPT_LENGTH - 2; // "a a * b b" between Q and =
const OUTPUT_SLOTS = 4;
const MAX_OFFSET = 16;
const PHASES: ReadonlyMap<number, number> = new Map([
  [T.Q, 0],
  [T.EQ, 1],
  [T.CALL, 2],
  [T.END, 3],
  [T.OUT, 4],
  [T.END_OUT, 5],
  [T.ANS, 6],
  [T.EOS, 7],
]);
const COUNT_VALUES = 4;

/** Slots, and where each slot's rows start in the one embedding table E. */
const TOKEN_SLOTS = WINDOW + QUESTION_SLOTS + OUTPUT_SLOTS + 2;
export const SLOTS = TOKEN_SLOTS + 3;
const PHASE_BASE = TOKEN_SLOTS * VOCAB_SIZE;
const CALLS_BASE = PHASE_BASE + PHASES.size * MAX_OFFSET;
const FAILS_BASE = CALLS_BASE + COUNT_VALUES;
const TABLE_ROWS = FAILS_BASE + COUNT_VALUES;

/**
 * Reads a sequence one token at a time and writes the slot indices of the latest position. Sampling and training
 * both go through it, so the sampler's log-probs and the trainer's are computed from identical inputs.
 */
export class PrefixReader {
  readonly tokens: number[] = [];
  private phase = 0;
  private phaseAt = 0;
  private calls = 0;
  private fails = 0;
  private outAt = -1;

  push(token: number): void {
    const t = this.tokens.length;
    this.tokens.push(token);
    const phase = PHASES.get(token);
    if (phase !== undefined) {
      this.phase = phase;
      this.phaseAt = t;
    }
    if (token === T.CALL) this.calls++;
    if (token === T.OUT) this.outAt = t;
    if (token === T.E_PARSE || token === T.E_EXEC || token === T.E_TIME) this.fails++;
  }

  /** Writes the SLOTS indices (into E) of the latest position to out[offset…]. */
  write(out: Int32Array, offset: number): void {
    const tokens = this.tokens;
    const t = tokens.length - 1;
    let slot = 0;
    const put = (token: number) => {
      out[offset + slot] = slot * VOCAB_SIZE + token;
      slot++;
    };
    // Token k of the question (1-based: tokens[1..5]) and of the latest tool output, PAD outside them.
    const question = (k: number) => (k >= 1 && k <= QUESTION_SLOTS && k <= t ? tokens[k]! : T.PAD);
    const output = (k: number) => {
      const token =
        this.outAt >= 0 && k >= 1 && k <= OUTPUT_SLOTS && this.outAt + k <= t ? tokens[this.outAt + k]! : T.PAD;
      return token === T.END_OUT ? T.PAD : token;
    };
    for (let k = WINDOW - 1; k >= 0; k--) put(t - k >= 0 ? tokens[t - k]! : T.PAD);
    for (let k = 1; k <= QUESTION_SLOTS; k++) put(question(k));
    for (let k = 1; k <= OUTPUT_SLOTS; k++) put(output(k));
    // The next token is the (t − phaseAt + 1)-th since the structural token: point at the same index in the sources.
    const next = t - this.phaseAt + 1;
    put(question(next));
    put(output(next));
    out[offset + slot++] = PHASE_BASE + this.phase * MAX_OFFSET + Math.min(t - this.phaseAt, MAX_OFFSET - 1);
    out[offset + slot++] = CALLS_BASE + Math.min(this.calls, COUNT_VALUES - 1);
    out[offset + slot++] = FAILS_BASE + Math.min(this.fails, COUNT_VALUES - 1);
  }
}

/** Slot indices of every position of a right-padded [rows, length] batch of token ids. */
export function batchSlots(ids: ArrayLike<number>, rows: number, length: number): Int32Array {
  const out = new Int32Array(rows * length * SLOTS);
  for (let r = 0; r < rows; r++) {
    const reader = new PrefixReader();
    for (let t = 0; t < length; t++) {
      reader.push(ids[r * length + t]!);
      reader.write(out, (r * length + t) * SLOTS);
    }
  }
  return out;
}

/**
 * Σ_slots E[slots[n, s]] for each position n, as one differentiable op computed in plain JavaScript both ways. On
 * tfjs's cpu backend tf.gather + tf.sum took ~0.4 s for a 32-rollout batch, and gather's gradient (an unsorted
 * segment sum that loops over the table once per row) 10–60 s; these two loops take a few milliseconds.
 */
function embeddingSum(table: tf.Tensor2D, slots: Int32Array, n: number): tf.Tensor2D {
  const [rows, width] = table.shape;
  const op = tf.customGrad((x) => {
    const e = (x as tf.Tensor2D).dataSync();
    const sum = new Float32Array(n * width);
    for (let i = 0; i < n; i++) {
      const to = i * width;
      for (let s = 0; s < SLOTS; s++) {
        const from = slots[i * SLOTS + s]! * width;
        for (let h = 0; h < width; h++) sum[to + h] = sum[to + h]! + e[from + h]!;
      }
    }
    return {
      value: tf.tensor2d(sum, [n, width]),
      // ∂/∂E[row] = Σ of dy over the positions that read that row: a scatter-add.
      gradFunc: (dy: tf.Tensor) => {
        const g = dy.dataSync();
        const grad = new Float32Array(rows * width);
        for (let i = 0; i < n; i++) {
          const from = i * width;
          for (let s = 0; s < SLOTS; s++) {
            const to = slots[i * SLOTS + s]! * width;
            for (let h = 0; h < width; h++) grad[to + h] = grad[to + h]! + g[from + h]!;
          }
        }
        return tf.tensor2d(grad, [rows, width]);
      },
    };
  });
  return op(table) as tf.Tensor2D;
}

export interface PolicyShape {
  readonly hidden1: number;
  readonly hidden2: number;
}

export const DEFAULT_SHAPE: PolicyShape = { hidden1: 128, hidden2: 64 };

export class Policy {
  readonly variables: tf.Variable[];
  private readonly E: tf.Variable;
  private readonly b1: tf.Variable;
  private readonly W2: tf.Variable;
  private readonly b2: tf.Variable;
  private readonly W3: tf.Variable;
  private readonly b3: tf.Variable;

  private constructor(weights: readonly tf.Tensor[]) {
    this.variables = weights.map((w) => tf.variable(w, true));
    [this.E, this.b1, this.W2, this.b2, this.W3, this.b3] = this.variables as [
      tf.Variable,
      tf.Variable,
      tf.Variable,
      tf.Variable,
      tf.Variable,
      tf.Variable,
    ];
  }

  /** Fresh weights from the demo's own seeded generator (so a seed fixes everything). */
  static init(random: Rng, shape: PolicyShape = DEFAULT_SHAPE): Policy {
    const normal = (size: number, std: number) => Float32Array.from({ length: size }, () => std * random.normal());
    const { hidden1: h1, hidden2: h2 } = shape;
    const weights = [
      tf.tensor2d(normal(TABLE_ROWS * h1, 1 / Math.sqrt(SLOTS)), [TABLE_ROWS, h1]),
      tf.zeros([h1]),
      tf.tensor2d(normal(h1 * h2, Math.sqrt(2 / h1)), [h1, h2]),
      tf.zeros([h2]),
      tf.tensor2d(normal(h2 * VOCAB_SIZE, 0.01), [h2, VOCAB_SIZE]),
      tf.zeros([VOCAB_SIZE]),
    ];
    const policy = new Policy(weights);
    tf.dispose(weights);
    return policy;
  }

  /** The weights (shape and values), to cache the warm start on disk. */
  async save(): Promise<{ shape: number[]; values: Float32Array }[]> {
    return Promise.all(
      this.variables.map(async (v) => ({ shape: [...v.shape], values: Float32Array.from(await v.data()) })),
    );
  }

  static load(saved: readonly { readonly shape: readonly number[]; readonly values: Float32Array }[]): Policy {
    const weights = saved.map((w) => tf.tensor(w.values, [...w.shape], "float32"));
    const policy = new Policy(weights);
    tf.dispose(weights);
    return policy;
  }

  /** A copy with its own variables: GRPO and GRPO-RoC each start from the same warm-started weights. */
  clone(): Policy {
    return new Policy(this.variables);
  }

  get parameterCount(): number {
    return this.variables.reduce((n, v) => n + v.size, 0);
  }

  /** Logits [n, V] from slot indices [n · SLOTS]. */
  logitsFromSlots(slots: Int32Array, n: number): tf.Tensor2D {
    return tf.tidy(() => {
      const h1 = tf.relu(tf.add(embeddingSum(this.E as tf.Tensor2D, slots, n), this.b1));
      const h2 = tf.relu(tf.add(tf.matMul(h1, this.W2), this.b2));
      return tf.add(tf.matMul(h2, this.W3), this.b3) as tf.Tensor2D;
    });
  }

  /** trainStep's model: token ids [B, L] → next-token logits [B, L, V]. */
  readonly model = (ids: tf.Tensor2D): tf.Tensor3D => {
    const [rows, length] = ids.shape;
    const slots = batchSlots(ids.dataSync(), rows, length);
    return tf.tidy(
      () => tf.reshape(this.logitsFromSlots(slots, rows * length), [rows, length, VOCAB_SIZE]) as tf.Tensor3D,
    );
  };

  dispose(): void {
    tf.dispose(this.variables);
  }
}
