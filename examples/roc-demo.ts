/**
 * Resample-on-Correct on synthetic rStar2-style transcripts: 64 prompts × 32 rollouts, kept 16 per prompt.
 * Shows which rollouts each mode keeps, and that the correct ones kept use the tool more cleanly than the
 * correct ones dropped. Run: npm run demo:transcripts (`npm run demo` is the RL run of examples/demo/).
 */
import seedrandom from "seedrandom";
import { rocPipeline, rocPresets, type Rollout } from "../src/index.js";

const PROMPTS = 64;
const SAMPLES = 32;
const KEEP = 16;
const random = seedrandom.alea("grpo-roc demo");

const RESPONSES = {
  ok: "Tool call success\nstdout: 42\n",
  printsError: "Tool call success\nstdout: relative error 0.003\n",
  execution_error: "Tool call failure\nreason: runtime\nstderr: ZeroDivisionError: division by zero",
  timeout: "Tool call failure\nreason: worker_timeout\nstdout: Suicide from timeout.",
  parse_error: "Failed to decode tool call: Expecting ',' delimiter: line 1 column 20 (char 19)",
} as const;
type ResponseKind = keyof typeof RESPONSES;

/** One assistant turn per tool call, then the answer turn; the first turn's header belongs to the prompt. */
function transcript(calls: ResponseKind[], answers: number): string {
  const call = '<tool_call>{"name": "python", "arguments": {"code": "print(6*7)"}}</tool_call><|im_end|>';
  let text = "<reason>Let me compute.</reason>";
  for (const kind of calls) {
    text += `${call}\n<|im_start|>user\n<tool_response>${RESPONSES[kind]}</tool_response><|im_end|>\n<|im_start|>assistant\n<reason>ok</reason>`;
  }
  return `${text + "<answer>\\boxed{42}</answer>".repeat(answers)}<|im_end|>`;
}

/** A policy whose tool use is messy: a rollout can fail calls and still be right. */
function sampleRollout(groupId: number, skill: number): Rollout {
  const kinds: ResponseKind[] = [];
  const calls = Math.floor(random() * 5);
  for (let c = 0; c < calls; c++) {
    const u = random();
    kinds.push(
      u < 0.55 ? "ok" : u < 0.65 ? "printsError" : u < 0.8 ? "execution_error" : u < 0.9 ? "timeout" : "parse_error",
    );
  }
  const failures = kinds.filter((k) => k !== "ok" && k !== "printsError").length;
  const correct = random() < skill * (1 - 0.1 * failures);
  const answers = random() < 0.85 ? 1 : random() < 0.5 ? 2 : 0;
  return { groupId, reward: correct && answers > 0 ? 1 : 0, transcript: transcript(kinds, answers) };
}

const rollouts: Rollout[] = [];
for (let g = 0; g < PROMPTS; g++) {
  const skill = 0.05 + 0.9 * random();
  for (let s = 0; s < SAMPLES; s++) rollouts.push(sampleRollout(g, skill));
}

const percent = (x: number | null) => (x === null ? "   -  " : `${(100 * x).toFixed(1).padStart(5)}%`);
const fixed = (x: number | null) => (x === null ? "  -  " : x.toFixed(3));

console.log(`GRPO-RoC demo: ${PROMPTS} prompts × ${SAMPLES} rollouts → keep ${KEEP} per prompt\n`);
for (const [name, roc] of [
  ["paper (strict transcript parser, seeded sampling)", { ...rocPresets.paper, keepPerGroup: KEEP, seed: 7 }],
  ["reference (rStar2-Agent's released code)", { ...rocPresets.reference, keepPerGroup: KEEP }],
] as const) {
  const { kept, advantages, roc: result } = rocPipeline(rollouts, { roc });
  const m = result.metrics;
  console.log(`■ ${name}`);
  console.log(
    `  groups: ${m.groups.in} in, ${m.groups.resampled} resampled, ${m.groups.keptWhole} kept whole, ` +
      `${m.groups.droppedEqualRewards} dropped (all rewards equal)`,
  );
  console.log(
    `  rollouts kept: ${kept.length} of ${m.rollouts.in}; positives kept ${m.positives.kept}/${m.positives.seen}, negatives kept ${m.negatives.kept}/${m.negatives.seen}`,
  );
  console.log("                          tool-error ratio   mean p_err   mean p_format");
  for (const [label, s] of [
    ["correct, kept", m.keptPositives],
    ["correct, left out", m.droppedPositives],
    ["correct, all", m.allPositives],
  ] as const) {
    console.log(
      `  ${label.padEnd(22)}  ${percent(s.toolErrorRatio).padStart(14)}   ${fixed(s.meanPErr).padStart(10)}   ${fixed(s.meanPFormat).padStart(13)}`,
    );
  }
  const positiveAdvantages = Array.from(advantages).filter((a) => a > 0);
  console.log(
    `  advantages over the kept rollouts: ${advantages.length} values, ${positiveAdvantages.length} positive\n`,
  );
}
console.log("Correct rollouts that RoC keeps carry fewer tool errors than the ones it leaves out: that is the signal");
console.log("plain GRPO cannot give. Negatives are kept as they come, so failures stay diverse. Each mode measures");
console.log("with its own transcript dialect: the reference heuristic misses timeouts and undecodable calls, and");
console.log('flags successful runs that print the word "error"; the strict parser reads the sandbox\'s verdict.');
