import { UsageError } from "./args.js";
import { fileError, isSystemError } from "./exit.js";
import { ContiguousGroups, DuplicateIds } from "./groups.js";
import { type InputSource, openInput, spool } from "./input.js";
import { type RawLine, readLines } from "./line-reader.js";
import { type Identity, InputError, locateGroupError, parseLine } from "./lines.js";
import { commitAll, openSink, type Sink } from "./output.js";
import { Progress, progressMode } from "./progress.js";
import { serializeFields, serializeRecord } from "./record.js";
import { Tally } from "./summary.js";
import { checkDistinct, type Named, resolveTarget, type Target, targetName } from "./targets.js";
import { writeMessage } from "./terminal.js";
import type { Command, GroupCommand, LineCommand, Member, OutputRecord } from "./commands/types.js";

export interface RunSettings {
  readonly command: string;
  readonly output: string | undefined;
  readonly summary: string | undefined;
  readonly skipInvalid: boolean;
  readonly keptOnly: boolean;
  readonly includeRollout: boolean;
  readonly repeatedGroups: "error" | "separate";
  readonly maxLineBytes: number;
  readonly quiet: boolean;
  readonly progress: boolean;
}

interface Sinks {
  readonly records: Sink;
  readonly summary: Sink | undefined;
}

/**
 * Runs one command over the input. Before a line is read: the input and the targets are resolved, checked to be
 * distinct files, and opened (so an unwritable target fails first). The output and the summary are committed
 * together, only if every line went through (or was skipped).
 */
export async function run(command: Command, settings: RunSettings, inputPath: string | undefined): Promise<Tally> {
  const source = openInput(inputPath);
  const sinks = await openSinks(resolveTargets(settings, source));
  let input = source;
  try {
    // The batch std needs a first pass: stdin and pipes are copied so they can be read twice.
    if (command.kind === "group" && command.batch !== undefined) input = await spool(source);
    const tally = await runPasses(command, settings, input, sinks.records);
    await commit(sinks, tally);
    return tally;
  } catch (error) {
    sinks.records.abort();
    sinks.summary?.abort();
    throw error;
  } finally {
    input.dispose();
  }
}

function resolveTargets(settings: RunSettings, source: InputSource): { records: Target; summary: Target | undefined } {
  if (settings.summary === "-" && (settings.output === undefined || settings.output === "-")) {
    throw new UsageError(
      "--summary -: the records already go to stdout; give -o FILE for them, or a file for the summary",
    );
  }
  const records = resolveTarget("-o", settings.output);
  const summary = settings.summary === undefined ? undefined : resolveTarget("--summary", settings.summary);
  const input: Named = {
    label: source.label === "stdin" ? "stdin" : `the input ${source.label}`,
    role: "input",
    stats: source.stats,
  };
  checkDistinct([
    input,
    targetName(records, "output"),
    ...(summary === undefined ? [] : [targetName(summary, "summary")]),
  ]);
  return { records, summary };
}

async function openSinks(targets: { records: Target; summary: Target | undefined }): Promise<Sinks> {
  const records = await openSink(targets.records);
  try {
    return { records, summary: targets.summary === undefined ? undefined : await openSink(targets.summary) };
  } catch (error) {
    records.abort();
    throw error;
  }
}

async function commit(sinks: Sinks, tally: Tally): Promise<void> {
  if (sinks.summary === undefined) return commitAll([sinks.records]);
  await sinks.summary.write(JSON.stringify(tally.toJSON(), null, 2));
  await commitAll([sinks.records, sinks.summary]);
}

/**
 * Every line of `input` through `command`, the records written to `sink`. When an advantage needs the std of the
 * whole batch, a first pass collects the rewards that enter it: `input` must then be readable twice.
 */
export async function runPasses(
  command: Command,
  settings: RunSettings,
  input: PassInput,
  sink: RecordSink,
): Promise<Tally> {
  if (command.kind === "group" && command.batch !== undefined) {
    const collected: number[] = [];
    await new Pass(command, settings, input, " (pass 1 of 2: batch std)", undefined, collected).run();
    command.batch.setRewards(Float64Array.from(collected));
    return new Pass(command, settings, input, " (pass 2 of 2)", sink).run();
  }
  return new Pass(command, settings, input, "", sink).run();
}

/** What a pass reads: an input to cut into lines, or lines already cut (the rollouts of a `serve` request). */
export type PassInput = InputSource | { readonly size: undefined; lines(): Iterable<RawLine> };

/** Where a pass writes its records, one JSON text at a time (resolving once it can take more). */
export type RecordSink = Pick<Sink, "write">;

type Item = { readonly member: Member } | { readonly invalid: OutputRecord };

const NO_IDS: Identity = { id: undefined, groupId: undefined };

/**
 * One pass over the input. Without a sink it only collects, for the batch std, the rewards that enter the
 * advantages; it stops on the same errors as the writing pass, and under --skip-invalid stays silent about the
 * lines it skips (the writing pass reports them).
 */
class Pass {
  private readonly tally: Tally;
  private readonly progress: Progress;
  private readonly groups: ContiguousGroups<Item>;
  /** Line commands: the ids of the current run of lines of one group, to refuse a duplicate. */
  private readonly runIds = new DuplicateIds();
  private line = 0;

  constructor(
    private readonly command: Command,
    private readonly settings: RunSettings,
    private readonly input: PassInput,
    label: string,
    private readonly sink: RecordSink | undefined,
    private readonly collected: number[] = [],
  ) {
    this.tally = new Tally(settings.command);
    this.progress = createProgress(settings, input, label);
    this.groups = new ContiguousGroups<Item>(settings.repeatedGroups);
  }

  async run(): Promise<Tally> {
    if ("lines" in this.input) {
      // Lines already in memory (a serve request): awaited only when the sink asks to wait, since a promise per line
      // was a tenth of a request's time.
      for (const raw of this.input.lines()) {
        const waiting = this.take(raw);
        if (waiting !== undefined) await waiting;
      }
    } else {
      const onBytes = (bytes: number) => this.progress.addBytes(bytes);
      for await (const raw of readInput(this.input, this.settings.maxLineBytes, onBytes)) await this.take(raw);
    }
    const last = this.groups.finish();
    if (last !== undefined) await this.flush(last);
    this.progress.finish();
    return this.tally;
  }

  private take(raw: RawLine): Promise<void> | undefined {
    const line = ++this.line;
    this.tally.lines++;
    this.progress.addLine();
    if ("problem" in raw) return this.takeInvalid(new InputError(line, "", raw.problem), NO_IDS);
    if (raw.text.trim() === "") {
      this.tally.emptyLines++;
      return undefined;
    }
    const parsed = parseLine(raw.text, line);
    if (!parsed.ok) return this.takeInvalid(parsed.error, parsed);
    const text = this.settings.includeRollout ? raw.text.trim() : undefined;
    const member: Member = { line, rollout: parsed.rollout, groupId: parsed.groupId, id: parsed.id, text };
    if (this.command.kind === "line") return this.takeAlone(this.command, member);
    return this.takeIntoGroup(member);
  }

  /** An invalid line: an error, or under --skip-invalid an invalid record in its place in the order. */
  private takeInvalid(error: InputError, ids: Identity): Promise<void> | undefined {
    const record = this.invalidRecord(error, ids);
    if (this.command.kind === "line" || this.groups.addLoose({ invalid: record }) !== undefined) {
      return this.emit([record]);
    }
    return undefined;
  }

  private takeAlone(command: LineCommand, member: Member): Promise<void> | undefined {
    const duplicate = inputErrorOf(() => this.runIds.check(member));
    if (duplicate !== undefined) return this.takeInvalid(duplicate, member);
    this.runIds.add(member);
    return this.emit([withRollout(command.processLine(member, this.tally), member)]);
  }

  private takeIntoGroup(member: Member): Promise<void> | undefined {
    const refused = inputErrorOf(() => this.groups.check(member));
    if (refused !== undefined) return this.takeInvalid(refused, member);
    const completed = this.groups.add(member, { member });
    return completed === undefined ? undefined : this.flush(completed);
  }

  /** A complete group (with the invalid lines among it): its records, in input order; or, collecting, its rewards. */
  private flush(items: readonly Item[]): Promise<void> | undefined {
    const members = items.flatMap((item) => ("member" in item ? [item.member] : []));
    if (this.sink === undefined) {
      if (members.length > 0) this.collect(members);
      return undefined;
    }
    const records = members.length === 0 ? [] : this.processGroup(members);
    let next = 0;
    return this.emit(
      items.map((item) => ("member" in item ? withRollout(records[next++]!, item.member) : item.invalid)),
    );
  }

  private processGroup(members: readonly Member[]): OutputRecord[] {
    const command = this.command as GroupCommand;
    const result = this.attempt(members, () => command.processGroup(members, this.tally));
    return result instanceof InputError ? this.invalidGroupRecords(members, result) : result;
  }

  private collect(members: readonly Member[]): void {
    const batch = (this.command as GroupCommand).batch!;
    const rewards = this.attempt(members, () => batch.collect(members));
    if (!(rewards instanceof InputError)) for (const reward of rewards) this.collected.push(reward);
  }

  /** The library's work on a group; its error located by line, thrown, or under --skip-invalid returned. */
  private attempt<T>(members: readonly Member[], work: () => T): T | InputError {
    try {
      return work();
    } catch (error) {
      const lines = members.map((m) => m.line);
      const located = locateGroupError(error, lines, members[0]!.groupId);
      if (!this.settings.skipInvalid) throw located;
      return located;
    }
  }

  /** A group the library rejects, under --skip-invalid: all its lines are dropped with the reason. */
  private invalidGroupRecords(members: readonly Member[], error: InputError): OutputRecord[] {
    const reason = error.message.replace(/\n/g, "; ");
    this.tally.invalidGroups++;
    this.tally.invalidGroupRollouts += members.length;
    this.tally.rollouts += members.length;
    this.warn(`the group ${members[0]!.groupId.json} of ${members.length} rollouts: ${reason}`);
    return members.map((member) => ({
      dropped: true,
      record: {
        line: member.line,
        id: member.id ?? null,
        groupId: member.groupId,
        dropped: true,
        reasonCode: "invalid",
        reason: `invalid group: ${reason}`,
      },
    }));
  }

  private invalidRecord(error: InputError, ids: Identity): OutputRecord {
    if (!this.settings.skipInvalid) throw error;
    this.tally.invalidLines++;
    this.warn(error.message);
    const record = {
      line: this.line,
      id: ids.id ?? null,
      groupId: ids.groupId ?? null,
      dropped: true,
      reasonCode: "invalid",
      reason: `invalid: ${error.reason}`,
    };
    return { dropped: true, record };
  }

  /**
   * Writes the records from `from` on. Like take and flush, it returns a promise only when the sink asks to wait, and
   * goes on once it may.
   */
  private emit(records: readonly OutputRecord[], from = 0): Promise<void> | undefined {
    if (this.sink === undefined) return undefined;
    for (let k = from; k < records.length; k++) {
      const output = records[k]!;
      if (this.settings.keptOnly && output.dropped) continue;
      this.tally.records++;
      const { rollout } = output;
      const text =
        "record" in output
          ? serializeRecord(output.record, rollout)
          : serializeFields(
              output.member.line,
              output.member.id ?? null,
              output.member.groupId,
              output.fields,
              rollout,
            );
      const waiting = this.sink.write(text);
      if (waiting !== undefined) return waiting.then(() => this.emit(records, k + 1));
    }
    return undefined;
  }

  private warn(text: string): void {
    if (this.settings.quiet || this.sink === undefined) return;
    this.progress.clear();
    writeMessage(`grpo-roc ${this.settings.command}`, `skipped ${text}`);
  }
}

function createProgress(settings: RunSettings, input: PassInput, label: string): Progress {
  const recordsToTerminal = (settings.output === undefined || settings.output === "-") && process.stdout.isTTY === true;
  return new Progress({
    mode: progressMode({
      quiet: settings.quiet,
      forced: settings.progress,
      stderrIsTTY: process.stderr.isTTY === true,
      recordsToTerminal,
    }),
    label: `grpo-roc ${settings.command}${label}`,
    total: input.size,
  });
}

/** The input's lines; a failure to read it (EIO, a vanished file) is a file error naming it. */
async function* readInput(
  input: InputSource,
  maxLineBytes: number,
  onBytes: (bytes: number) => void,
): AsyncGenerator<RawLine> {
  try {
    yield* readLines(input.open(), maxLineBytes, onBytes);
  } catch (error) {
    throw isSystemError(error) ? fileError(`cannot read ${input.label}`, error) : error;
  }
}

function withRollout(record: OutputRecord, member: Member): OutputRecord {
  return member.text === undefined ? record : { ...record, rollout: member.text };
}

/** The InputError `check` throws, if any; other errors go through. */
function inputErrorOf(check: () => void): InputError | undefined {
  try {
    check();
    return undefined;
  } catch (error) {
    if (error instanceof InputError) return error;
    throw error;
  }
}
