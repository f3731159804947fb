// Aegra against the official JS client, @langchain/langgraph-sdk from npm (what Agent Chat UI's useStream runs on).
// Run: `npm ci --prefix tests/js`, then `.venv/bin/pytest tests/server/test_js_client.py` (starts a server), or
// against a running server: `AEGRA_URL=http://127.0.0.1:8000 node --test tests/js/` (graphs: tests/graphs/aegra.json).
//
// Two layers are exercised: the plain `Client` (threads, runs.stream / create / joinStream, state, history, search)
// and the framework-free helpers React's useStream is built from (`@langchain/langgraph-sdk/ui`:
// `MessageTupleManager`, and `StreamOrchestrator`, which owns a `StreamManager` and does useStream's submit,
// history refresh, interrupt and join logic).

import { test } from "node:test";
import assert from "node:assert/strict";

import { Client } from "@langchain/langgraph-sdk";
import { MessageTupleManager, StreamOrchestrator, toMessageDict } from "@langchain/langgraph-sdk/ui";

const API_URL = process.env.AEGRA_URL;
if (!API_URL) throw new Error("set AEGRA_URL to the base URL of a running Aegra server (tests/graphs/aegra.json)");

const TEST_TIMEOUT = 60_000;

/** A Client that records every request it sends (method, path, headers, JSON body). */
function recordingClient() {
  const requests = [];
  const client = new Client({
    apiUrl: API_URL,
    onRequest: (url, init) => {
      const parsed = new URL(url.toString());
      let body;
      if (typeof init.body === "string") {
        try {
          body = JSON.parse(init.body);
        } catch {
          body = init.body;
        }
      }
      requests.push({
        method: init.method ?? "GET",
        path: parsed.pathname,
        search: parsed.search,
        headers: new Headers(init.headers ?? {}),
        body,
      });
      return init;
    },
  });
  return { client, requests };
}

async function collect(stream) {
  const events = [];
  for await (const event of stream) events.push(event);
  return events;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Message dicts from the server, or @langchain/core message instances from the ui helpers: type and text. */
function messageType(message) {
  return message.type ?? message._getType?.();
}

function messageText(message) {
  if (typeof message.text === "string") return message.text;
  return typeof message.content === "string" ? message.content : JSON.stringify(message.content);
}

function summary(messages) {
  return (messages ?? []).map((m) => [messageType(m), messageText(m)]);
}

/** Resumable streams carry SSE ids: present, unique, strictly increasing. */
function assertIdsIncrease(events, what) {
  const ids = events.map((e) => e.id);
  assert.ok(
    ids.every((id) => id !== undefined && id !== ""),
    `${what}: every event of a resumable stream has an id: ${JSON.stringify(ids)}`,
  );
  for (let i = 1; i < ids.length; i += 1) {
    assert.ok(Number(ids[i]) > Number(ids[i - 1]), `${what}: ids increase: ${JSON.stringify(ids)}`);
  }
}

/** After a stream ends, the client GETs the run (Location header) and reconnects if it is still running. */
function assertNoStreamReconnect(requests, what) {
  const reconnects = requests.filter((r) => r.method === "GET" && r.path.endsWith("/stream"));
  assert.deepEqual(
    reconnects.map((r) => r.path),
    [],
    `${what}: the stream closed before its run was finished, so the client reconnected`,
  );
}

function assertHistoryNewestFirst(history, what) {
  for (let i = 1; i < history.length; i += 1) {
    const newer = history[i - 1];
    const older = history[i];
    assert.ok(newer.metadata.step > older.metadata.step, `${what}: steps decrease: ${history.map((s) => s.metadata.step)}`);
    assert.ok(
      Date.parse(newer.created_at) >= Date.parse(older.created_at),
      `${what}: created_at decreases: ${history.map((s) => s.created_at)}`,
    );
    assert.equal(
      newer.parent_checkpoint?.checkpoint_id,
      older.checkpoint.checkpoint_id,
      `${what}: each state's parent is the next (older) one`,
    );
  }
}

/** A StreamOrchestrator wired the way React's useStream wires it (fetchStateHistory: {limit: 10}). */
function orchestrator(client, assistantId, events) {
  return new StreamOrchestrator(
    {
      assistantId,
      fetchStateHistory: { limit: 10 },
      throttle: false,
      onCreated: (meta) => events.push(["created", meta]),
      onFinish: (state, meta) => events.push(["finish", state, meta]),
      onError: (error) => events.push(["error", error]),
    },
    {
      getClient: () => client,
      getAssistantId: () => assistantId,
      getMessagesKey: () => "messages",
    },
  );
}

let chatThreadId;

test("chat: runs.stream with messages-tuple + values, accumulated by MessageTupleManager", { timeout: TEST_TIMEOUT }, async () => {
  const { client, requests } = recordingClient();
  const thread = await client.threads.create();
  chatThreadId = thread.thread_id;

  let created;
  const events = await collect(
    client.runs.stream(thread.thread_id, "chat", {
      input: { messages: [{ role: "user", content: "hello js" }] },
      streamMode: ["messages-tuple", "values"],
      streamSubgraphs: true,
      streamResumable: true,
      onDisconnect: "continue",
      onRunCreated: (meta) => {
        created = meta;
      },
    }),
  );

  // Content-Location told the client which run it created.
  assert.ok(created?.run_id, "onRunCreated was called (Content-Location on POST /threads/{id}/runs/stream)");
  assert.equal(created.thread_id, thread.thread_id);

  assert.equal(events[0]?.event, "metadata", `the first event is metadata: ${JSON.stringify(events[0])}`);
  assert.equal(events[0].data.run_id, created.run_id);
  assertIdsIncrease(events, "chat stream");

  const kinds = new Set(events.map((e) => e.event));
  assert.deepEqual([...kinds].sort(), ["messages", "metadata", "values"], "only the requested modes are streamed");

  // messages-tuple: event `messages`, data [chunk, metadata], every chunk of one message with the same id.
  const tuples = events.filter((e) => e.event === "messages");
  assert.ok(tuples.length > 1, `the fake model streams token by token, got ${tuples.length} messages events`);
  for (const { data } of tuples) {
    assert.ok(Array.isArray(data) && data.length === 2, `messages data is [chunk, metadata]: ${JSON.stringify(data)}`);
    assert.equal(data[1].langgraph_node, "chat");
  }
  const ids = new Set(tuples.map((e) => e.data[0].id));
  assert.equal(ids.size, 1, `all chunks carry one message id: ${[...ids]}`);
  const [messageId] = ids;
  assert.ok(messageId, "chunks have an id (the JS client drops chunks without one)");
  assert.equal(tuples.map((e) => e.data[0].content).join(""), "fake reply to hello js");

  // The helper useStream feeds messages events into.
  const manager = new MessageTupleManager();
  for (const { data } of tuples) {
    assert.equal(manager.add(data[0], data[1]), messageId);
  }
  const accumulated = manager.get(messageId);
  assert.equal(messageText(accumulated.chunk), "fake reply to hello js");
  const asDict = toMessageDict(accumulated.chunk);
  assert.equal(asDict.type, "ai");
  assert.equal(asDict.id, messageId);
  assert.equal(accumulated.metadata?.langgraph_node, "chat");

  // The last event is the final values: both messages; the AI message keeps the id of its chunks.
  const last = events.at(-1);
  assert.equal(last.event, "values");
  assert.deepEqual(summary(last.data.messages), [
    ["human", "hello js"],
    ["ai", "fake reply to hello js"],
  ]);
  assert.equal(last.data.messages[1].id, messageId);

  const run = await client.runs.get(thread.thread_id, created.run_id);
  assert.equal(run.status, "success");
  assertNoStreamReconnect(requests, "chat stream");
});

test("sidebar and history: threads.search by graph_id, getHistory newest first", { timeout: TEST_TIMEOUT }, async () => {
  assert.ok(chatThreadId, "needs the thread of the chat test");
  const client = new Client({ apiUrl: API_URL });

  // Agent Chat UI's sidebar.
  const found = await client.threads.search({ metadata: { graph_id: "chat" }, limit: 100 });
  const mine = found.find((t) => t.thread_id === chatThreadId);
  assert.ok(mine, `threads.search({metadata: {graph_id: "chat"}, limit: 100}) finds thread ${chatThreadId}`);
  assert.equal(mine.metadata.graph_id, "chat");
  assert.ok(mine.metadata.assistant_id, "run creation stamps assistant_id on the thread");
  assert.equal(mine.status, "idle");
  assert.deepEqual(summary(mine.values.messages), [
    ["human", "hello js"],
    ["ai", "fake reply to hello js"],
  ]);

  // useStream with fetchStateHistory: {limit: 10}.
  const history = await client.threads.getHistory(chatThreadId, { limit: 10 });
  assert.ok(history.length >= 2, `history has the input and the reply states, got ${history.length}`);
  assert.ok(history.length <= 10);
  assertHistoryNewestFirst(history, "chat history");
  const head = await client.threads.getState(chatThreadId);
  assert.equal(history[0].checkpoint.checkpoint_id, head.checkpoint.checkpoint_id, "history[0] is the head");
  assert.deepEqual(history[0].next, []);
  assert.deepEqual(summary(history[0].values.messages), [
    ["human", "hello js"],
    ["ai", "fake reply to hello js"],
  ]);

  const two = await client.threads.getHistory(chatThreadId, { limit: 2 });
  assert.deepEqual(
    two.map((s) => s.checkpoint.checkpoint_id),
    history.slice(0, 2).map((s) => s.checkpoint.checkpoint_id),
    "limit keeps the newest states",
  );
});

test("hitl: interrupt in the stream and the state, resume with a command", { timeout: TEST_TIMEOUT }, async () => {
  const { client, requests } = recordingClient();
  const thread = await client.threads.create();

  const first = await collect(
    client.runs.stream(thread.thread_id, "hitl", {
      input: { topic: "js" },
      streamMode: ["values", "updates"],
      streamResumable: true,
      onDisconnect: "continue",
    }),
  );
  assert.equal(first[0].event, "metadata");
  const expected = { question: "approve?", draft: "draft for js" };
  const interruptUpdate = first.find((e) => e.event === "updates" && e.data.__interrupt__);
  const interruptValues = first.find((e) => e.event === "values" && e.data.__interrupt__);
  assert.ok(
    interruptUpdate || interruptValues,
    `the interrupt is streamed (updates or values with __interrupt__): ${JSON.stringify(first)}`,
  );
  for (const event of [interruptUpdate, interruptValues].filter(Boolean)) {
    assert.equal(event.data.__interrupt__.length, 1);
    assert.deepEqual(event.data.__interrupt__[0].value, expected);
    assert.ok(event.data.__interrupt__[0].id, "an interrupt has an id");
  }
  const firstRunId = first[0].data.run_id;
  // As on langgraph-api, pausing is not failing: the run succeeded, the thread is interrupted.
  assert.equal((await client.runs.get(thread.thread_id, firstRunId)).status, "success");

  const state = await client.threads.getState(thread.thread_id);
  assert.deepEqual(state.next, ["ask"]);
  const taskInterrupts = state.tasks.flatMap((t) => t.interrupts ?? []);
  assert.equal(taskInterrupts.length, 1, `tasks[].interrupts: ${JSON.stringify(state.tasks)}`);
  assert.deepEqual(taskInterrupts[0].value, expected);
  assert.deepEqual(
    (state.interrupts ?? []).map((i) => i.value),
    [expected],
    `state.interrupts: ${JSON.stringify(state.interrupts)}`,
  );
  const interruptedThread = await client.threads.get(thread.thread_id);
  assert.equal(interruptedThread.status, "interrupted");

  // Resume the way agent-inbox / useStream do: an empty input together with the command; the command wins.
  const resumed = await collect(
    client.runs.stream(thread.thread_id, "hitl", {
      input: {},
      command: { resume: { approved: true } },
      streamMode: ["values", "updates"],
      streamResumable: true,
      onDisconnect: "continue",
    }),
  );
  assert.equal(resumed[0].event, "metadata");
  assertIdsIncrease(resumed, "resume stream");
  const final = resumed.filter((e) => e.event === "values").at(-1);
  assert.ok(final, "the resumed run streams values");
  assert.deepEqual(final.data.decision, { approved: true });
  assert.equal(final.data.draft, "draft for js");
  assert.equal(final.data.__interrupt__, undefined);
  assert.deepEqual(summary(final.data.messages), [["ai", "decision: {'approved': True}"]]);
  assert.ok(
    resumed.some((e) => e.event === "updates" && e.data.finish),
    "the resumed run went through `finish`",
  );

  const after = await client.threads.getState(thread.thread_id);
  assert.deepEqual(after.next, []);
  assert.deepEqual(after.tasks, []);
  assert.deepEqual(after.interrupts ?? [], []);
  assert.equal((await client.threads.get(thread.thread_id)).status, "idle");
  assertNoStreamReconnect(requests, "hitl streams");
});

test("useStream core (StreamOrchestrator): submit chat, then interrupt and resume on hitl", { timeout: TEST_TIMEOUT }, async () => {
  const { client, requests } = recordingClient();

  // chat, as Agent Chat UI submits it: no thread yet, messages read (so messages-tuple is tracked).
  const chatEvents = [];
  const chat = orchestrator(client, "chat", chatEvents);
  chat.trackStreamMode("messages-tuple");
  const partial = new Set();
  const unsubscribe = chat.subscribe(() => {
    for (const m of chat.messages) if (messageType(m) === "ai") partial.add(messageText(m));
  });
  await chat.submit(
    { messages: [{ type: "human", content: "hello orchestrator" }] },
    { streamSubgraphs: true, streamResumable: true },
  );
  unsubscribe();
  assert.deepEqual(
    chatEvents.filter(([kind]) => kind === "error"),
    [],
    "no errors reported by the orchestrator",
  );
  assert.ok(chat.threadId, "the orchestrator created a thread");
  assert.equal(chat.isLoading, false);
  assert.equal(chat.error, undefined);
  assert.deepEqual(summary(chat.messages), [
    ["human", "hello orchestrator"],
    ["ai", "fake reply to hello orchestrator"],
  ]);
  assert.ok(
    [...partial].some((text) => text.length > 0 && text !== "fake reply to hello orchestrator"),
    `messages-tuple chunks showed a partial AI message while streaming: ${JSON.stringify([...partial])}`,
  );
  const created = chatEvents.find(([kind]) => kind === "created")?.[1];
  assert.ok(created?.run_id, "onCreated got the run id from Content-Location");
  assert.equal(created.thread_id, chat.threadId);
  const finished = chatEvents.find(([kind]) => kind === "finish");
  assert.ok(finished, "onFinish was called");
  assert.ok(finished[1]?.checkpoint?.checkpoint_id, "onFinish got the head state read from history");

  const submitRequest = requests.find((r) => r.method === "POST" && r.path === `/threads/${chat.threadId}/runs/stream`);
  assert.ok(submitRequest, "the orchestrator streamed through POST /threads/{id}/runs/stream");
  assert.deepEqual([...submitRequest.body.stream_mode].sort(), ["messages-tuple", "updates", "values"]);
  assert.equal(submitRequest.body.stream_resumable, true);
  assert.equal(submitRequest.body.on_disconnect, "continue");
  const historyReads = requests.filter((r) => r.method === "POST" && r.path === `/threads/${chat.threadId}/history`);
  assert.ok(historyReads.length >= 1, "after the run, history is read");
  assert.deepEqual(historyReads.at(-1).body, { limit: 10 });
  assertNoStreamReconnect(requests, "orchestrator chat");

  // hitl: the interrupt useStream shows, then submit(null, {command: {resume}}).
  const hitlEvents = [];
  const hitl = orchestrator(client, "hitl", hitlEvents);
  await hitl.submit({ topic: "orchestrator" }, { streamResumable: true });
  assert.deepEqual(hitlEvents.filter(([kind]) => kind === "error"), []);
  assert.equal(hitl.isLoading, false);
  const interrupt = hitl.interrupt;
  assert.ok(interrupt, `the orchestrator shows an interrupt: ${JSON.stringify(hitl.values)}`);
  assert.deepEqual(interrupt.value, { question: "approve?", draft: "draft for orchestrator" });
  assert.equal(hitl.interrupts.length, 1);

  await hitl.submit(null, { command: { resume: { approved: false } }, streamResumable: true });
  assert.deepEqual(hitlEvents.filter(([kind]) => kind === "error"), []);
  assert.equal(hitl.interrupt, undefined, "no interrupt after the resume");
  assert.deepEqual(hitl.values.decision, { approved: false });
  assert.deepEqual(summary(hitl.messages), [["ai", "decision: {'approved': False}"]]);
  const head = await client.threads.getState(hitl.threadId);
  assert.deepEqual(head.values.decision, { approved: false });
  assert.deepEqual(head.next, []);
});

test("reconnect: runs.create + joinStream with Last-Event-ID -1 replays from the start, then follows", { timeout: TEST_TIMEOUT }, async () => {
  const { client, requests } = recordingClient();
  const thread = await client.threads.create();

  let created;
  const run = await client.runs.create(thread.thread_id, "slow", {
    input: { steps: 3, delay: 0.3, label: "js" },
    streamMode: ["values"],
    streamResumable: true,
    onRunCreated: (meta) => {
      created = meta;
    },
  });
  assert.equal(created?.run_id, run.run_id, "onRunCreated gives the run id of runs.create (Content-Location)");
  assert.equal(created.thread_id, thread.thread_id);

  // Let the run get going, so part of the replay is history and part is live.
  const deadline = Date.now() + 15_000;
  while ((await client.runs.get(thread.thread_id, run.run_id)).status === "pending") {
    assert.ok(Date.now() < deadline, "the run started");
    await sleep(50);
  }
  await sleep(350);

  const events = await collect(client.runs.joinStream(thread.thread_id, run.run_id, { lastEventId: "-1" }));
  const join = requests.find((r) => r.method === "GET" && r.path === `/threads/${thread.thread_id}/runs/${run.run_id}/stream`);
  assert.equal(join?.headers.get("last-event-id"), "-1", "joinStream sent Last-Event-ID: -1");

  // It ends when the run ends.
  assert.equal((await client.runs.get(thread.thread_id, run.run_id)).status, "success");

  assert.equal(events[0]?.event, "metadata", `the replay starts at the beginning: ${JSON.stringify(events[0])}`);
  assert.equal(events[0].data.run_id, run.run_id);
  assertIdsIncrease(events, "joined stream");
  const values = events.filter((e) => e.event === "values").map((e) => e.data);
  assert.equal(values.length + 1, events.length, "only metadata and values (the run's stream_mode)");
  const serialized = values.map((v) => JSON.stringify(v));
  assert.equal(new Set(serialized).size, serialized.length, `no duplicates: ${serialized.join("\n")}`);
  assert.deepEqual(values[0], { steps: 3, delay: 0.3, label: "js", log: [] }, "the input values come first");
  const logs = values.filter((v) => v.done !== undefined).map((v) => v.log);
  assert.deepEqual(logs, [[], ["js:1"], ["js:1", "js:2"], ["js:1", "js:2", "js:3"]], "one values event per step, in order");
});

test("reconnect: a dropped stream (onDisconnect continue) is rejoined with its last id and with -1", { timeout: TEST_TIMEOUT }, async () => {
  const { client, requests } = recordingClient();
  const thread = await client.threads.create();

  const controller = new AbortController();
  let created;
  const seen = [];
  const stream = client.runs.stream(thread.thread_id, "slow", {
    input: { steps: 4, delay: 0.25, label: "drop" },
    streamMode: ["values"],
    streamResumable: true,
    onDisconnect: "continue",
    signal: controller.signal,
    onRunCreated: (meta) => {
      created = meta;
    },
  });
  try {
    for await (const event of stream) {
      seen.push(event);
      if (event.event === "values" && event.data.log?.length === 1) {
        controller.abort();
        break;
      }
    }
  } catch (error) {
    if (error?.name !== "AbortError") throw error;
  }
  assert.ok(created?.run_id, "onRunCreated gave the run id");
  const runId = created.run_id;
  assert.equal(seen[0].event, "metadata");
  assert.equal(seen.at(-1).data.log.length, 1, "dropped after the first step");
  const lastSeenId = seen.at(-1).id;
  assert.ok(lastSeenId !== undefined, "resumable events carry ids");

  // The run keeps going without the client (on_disconnect=continue).
  await sleep(200);
  assert.ok(
    ["pending", "running"].includes((await client.runs.get(thread.thread_id, runId)).status),
    "the run is still going after the client dropped",
  );

  // Rejoin twice at once: where we left off (a page that kept its last id) and from the start (reconnectOnMount).
  const [rest, full] = await Promise.all([
    collect(client.runs.joinStream(thread.thread_id, runId, { lastEventId: lastSeenId })),
    collect(client.runs.joinStream(thread.thread_id, runId, { lastEventId: "-1" })),
  ]);
  assert.equal((await client.runs.get(thread.thread_id, runId)).status, "success");

  assertIdsIncrease(full, "replay from -1");
  assert.equal(full[0].event, "metadata");
  assert.deepEqual(
    full.filter((e) => e.event === "values" && e.data.done !== undefined).map((e) => e.data.log.length),
    [0, 1, 2, 3, 4],
    "the replay has every step once",
  );
  assertIdsIncrease(rest, "resume after the last id");
  assert.ok(rest.length > 0, "something was missed");
  assert.ok(rest.every((e) => Number(e.id) > Number(lastSeenId)), "nothing already seen comes again");
  const key = (e) => JSON.stringify([e.id, e.event, e.data]);
  assert.deepEqual(
    [...seen, ...rest].map(key),
    full.map(key),
    "what was seen plus what was missed is exactly the whole stream",
  );

  const joins = requests.filter((r) => r.method === "GET" && r.path.endsWith(`/runs/${runId}/stream`));
  assert.deepEqual(joins.map((r) => r.headers.get("last-event-id")).sort(), ["-1", String(lastSeenId)].sort());
});

test("useStream core (StreamOrchestrator): joinStream on mount replays a run in flight", { timeout: TEST_TIMEOUT }, async () => {
  const { client, requests } = recordingClient();
  const thread = await client.threads.create();
  const run = await client.runs.create(thread.thread_id, "slow", {
    input: { steps: 2, delay: 0.3, label: "mount" },
    streamMode: ["values", "updates"],
    streamResumable: true,
  });

  const events = [];
  const orch = orchestrator(client, "slow", events);
  orch.initThreadId(thread.thread_id);
  const logs = [];
  orch.subscribe(() => {
    const log = orch.values?.log;
    if (Array.isArray(log)) logs.push(log.join(","));
  });
  await orch.joinStream(run.run_id); // lastEventId defaults to "-1"

  assert.deepEqual(events.filter(([kind]) => kind === "error"), []);
  const join = requests.find((r) => r.method === "GET" && r.path === `/threads/${thread.thread_id}/runs/${run.run_id}/stream`);
  assert.equal(join?.headers.get("last-event-id"), "-1");
  assert.equal(orch.isLoading, false);
  assert.deepEqual(orch.values.log, ["mount:1", "mount:2"]);
  assert.ok(logs.includes("mount:1"), `the intermediate step was shown: ${JSON.stringify(logs)}`);
  assert.equal((await client.runs.get(thread.thread_id, run.run_id)).status, "success");
  assert.ok(events.some(([kind]) => kind === "finish"), "onFinish was called");
});

test("useStream core (StreamOrchestrator): stop() aborts a non-resumable stream and the run is cancelled", { timeout: TEST_TIMEOUT }, async () => {
  const { client, requests } = recordingClient();
  const events = [];
  const orch = orchestrator(client, "slow", events);
  const submitted = orch.submit({ steps: 6, delay: 0.3, label: "stop" });
  const deadline = Date.now() + 15_000;
  while (!(orch.values?.log?.length >= 1)) {
    assert.ok(Date.now() < deadline, "the first step was streamed");
    await sleep(20);
  }
  await orch.stop();
  await submitted;

  const created = events.find(([kind]) => kind === "created")?.[1];
  assert.ok(created?.run_id);
  const submit = requests.find((r) => r.method === "POST" && r.path.endsWith("/runs/stream"));
  assert.equal(submit.body.on_disconnect, "cancel", "without reconnectOnMount useStream sends on_disconnect=cancel");
  assert.equal(submit.body.stream_resumable, false);

  let run;
  while (Date.now() < deadline) {
    run = await client.runs.get(created.thread_id, created.run_id);
    if (!["pending", "running"].includes(run.status)) break;
    await sleep(50);
  }
  assert.equal(run.status, "interrupted", "the dropped connection cancelled the run");
  const state = await client.threads.getState(created.thread_id);
  assert.ok(state.values.log.length < 6, `the run stopped early: ${JSON.stringify(state.values.log)}`);
  // Cut short with steps still to run: the thread can go on, so it is interrupted, as langgraph-api says.
  assert.equal((await client.threads.get(created.thread_id)).status, "interrupted");
});
