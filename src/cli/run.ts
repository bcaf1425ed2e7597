import { ContiguousGroups } from "./groups.js";
import { readLines, spool, type InputSource } from "./input.js";
import { InputError, locateGroupError, parseLine } from "./lines.js";
import { openAtomicFile, openSink, type Sink } from "./output.js";
import { Progress, progressMode } from "./progress.js";
import { Tally } from "./summary.js";
import type { Command, GroupCommand, Member, OutputRecord } from "./commands/types.js";

export interface RunSettings {
  readonly command: string;
  readonly output: string | undefined;
  readonly summary: string | undefined;
  readonly skipInvalid: boolean;
  readonly keptOnly: boolean;
  readonly includeRollout: boolean;
  readonly repeatedGroups: "error" | "separate";
  readonly quiet: boolean;
  readonly progress: boolean;
}

/** Runs one command over the input; the output is committed only if every line went through (or was skipped). */
export async function run(command: Command, settings: RunSettings, source: InputSource): Promise<Tally> {
  // Opened first: an unwritable destination (or summary file) is reported before any input is read, and before a
  // complete output could be committed next to a summary that cannot be.
  const sink = openSink(settings.output);
  let summary: Sink | undefined;
  try {
    summary = settings.summary === undefined ? undefined : openAtomicFile(settings.summary);
  } catch (error) {
    sink.abort();
    throw error;
  }
  let input = source;
  const twoPasses = command.kind === "group" && command.batch !== undefined;
  try {
    if (command.kind === "group" && command.batch !== undefined) {
      input = await spool(source);
      const rewards = await collectBatch(command, settings, input);
      command.batch.setRewards(rewards);
    }
    const label = twoPasses ? " (pass 2 of 2)" : "";
    const tally = await pass(command, settings, input, label, sink);
    await sink.commit();
    if (summary !== undefined) {
      await summary.write(JSON.stringify(tally.toJSON(), null, 2));
      await summary.commit();
    }
    return tally;
  } catch (error) {
    sink.abort();
    summary?.abort();
    throw error;
  } finally {
    input.dispose();
  }
}

type Item = { readonly member: Member } | { readonly invalid: OutputRecord };

/**
 * One pass over the input. Without a sink it only collects, for the batch std, the rewards that enter the
 * advantages; it stops on the same errors as the writing pass, and under --skip-invalid stays silent about the
 * lines it skips (the writing pass reports them).
 */
async function pass(
  command: Command,
  settings: RunSettings,
  input: InputSource,
  label: string,
  sink: Sink | undefined,
  collected?: number[],
): Promise<Tally> {
  const tally = new Tally(settings.command);
  const progress = new Progress({
    mode: progressMode({
      quiet: settings.quiet,
      forced: settings.progress,
      stderrIsTTY: process.stderr.isTTY === true,
      recordsToTerminal: (settings.output === undefined || settings.output === "-") && process.stdout.isTTY === true,
    }),
    label: `grpo-roc ${settings.command}${label}`,
    total: input.size,
  });
  const warn = (text: string) => {
    if (settings.quiet || sink === undefined) return;
    progress.clear();
    process.stderr.write(`grpo-roc ${settings.command}: skipped ${text}\n`);
  };
  const emit = async (records: readonly OutputRecord[]) => {
    if (sink === undefined) return;
    for (const { dropped, record } of records) {
      if (settings.keptOnly && dropped) continue;
      tally.records++;
      const waiting = sink.write(JSON.stringify(record));
      if (waiting !== undefined) await waiting;
    }
  };
  const invalidRecord = (line: number, error: InputError, id: unknown, groupId: unknown): OutputRecord => {
    if (!settings.skipInvalid) throw error;
    tally.invalidLines++;
    warn(error.message);
    return {
      dropped: true,
      record: { line, id, groupId, dropped: true, reasonCode: "invalid", reason: `invalid: ${error.reason}` },
    };
  };
  const withRollout = (record: OutputRecord, member: Member): OutputRecord =>
    settings.includeRollout
      ? { dropped: record.dropped, record: { ...record.record, rollout: member.rollout } }
      : record;

  const groups = new ContiguousGroups<Item>(settings.repeatedGroups);
  const flush = async (items: readonly Item[]) => {
    const members = items.flatMap((item) => ("member" in item ? [item.member] : []));
    let records: OutputRecord[];
    if (members.length === 0) records = [];
    else if (sink === undefined) {
      records = [];
      collectGroup(command as GroupCommand, members, settings, collected!);
    } else records = processGroup(command as GroupCommand, members, settings, tally, warn);
    let next = 0;
    await emit(items.map((item) => ("member" in item ? withRollout(records[next++]!, item.member) : item.invalid)));
  };

  let line = 0;
  for await (const text of readLines(input.open(), (bytes) => progress.addBytes(bytes))) {
    line++;
    tally.lines++;
    progress.addLine();
    if (text.trim() === "") {
      tally.emptyLines++;
      continue;
    }
    const parsed = parseLine(text, line);
    if (!parsed.ok) {
      const record = invalidRecord(line, parsed.error, parsed.id, parsed.groupId);
      if (command.kind === "line" || groups.addLoose({ invalid: record }) !== undefined) await emit([record]);
      continue;
    }
    const member: Member = { line, rollout: parsed.rollout };
    if (command.kind === "line") {
      await emit([withRollout(command.processLine(member, tally), member)]);
      continue;
    }
    try {
      groups.check(member.rollout.groupId, line);
    } catch (error) {
      if (!(error instanceof InputError)) throw error;
      const record = invalidRecord(line, error, member.rollout.id ?? null, member.rollout.groupId);
      if (groups.addLoose({ invalid: record }) !== undefined) await emit([record]);
      continue;
    }
    const completed = groups.add(member.rollout.groupId, line, { member });
    if (completed !== undefined) await flush(completed.items);
  }
  const last = groups.finish();
  if (last !== undefined) await flush(last.items);
  progress.finish();
  return tally;
}

/** A group the library rejects is an input error located by line; under --skip-invalid all its lines are dropped. */
function processGroup(
  command: GroupCommand,
  members: readonly Member[],
  settings: RunSettings,
  tally: Tally,
  warn: (text: string) => void,
): OutputRecord[] {
  try {
    return command.processGroup(members, tally);
  } catch (error) {
    const located = locateGroupError(
      error,
      members.map((m) => m.line),
      members[0]!.rollout.groupId,
    );
    if (!settings.skipInvalid) throw located;
    tally.invalidGroups++;
    tally.invalidGroupRollouts += members.length;
    tally.rollouts += members.length;
    warn(
      `the group ${JSON.stringify(members[0]!.rollout.groupId)} of ${members.length} rollouts: ` +
        `${located.message.replace(/\n/g, "; ")}`,
    );
    return members.map((member) => ({
      dropped: true,
      record: {
        line: member.line,
        id: member.rollout.id ?? null,
        groupId: member.rollout.groupId,
        dropped: true,
        reasonCode: "invalid",
        reason: `invalid group: ${located.message.replace(/\n/g, "; ")}`,
      },
    }));
  }
}

function collectGroup(
  command: GroupCommand,
  members: readonly Member[],
  settings: RunSettings,
  collected: number[],
): void {
  try {
    for (const reward of command.batch!.collect(members)) collected.push(reward);
  } catch (error) {
    const located = locateGroupError(
      error,
      members.map((m) => m.line),
      members[0]!.rollout.groupId,
    );
    if (!settings.skipInvalid) throw located;
  }
}

async function collectBatch(command: GroupCommand, settings: RunSettings, input: InputSource): Promise<Float64Array> {
  const collected: number[] = [];
  await pass(command, settings, input, " (pass 1 of 2: batch std)", undefined, collected);
  return Float64Array.from(collected);
}
