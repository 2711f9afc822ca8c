// The live list of recent tasks: GET /events (Server-Sent Events), read with fetch so
// that it can carry the operator token. When the agent refuses it (http.admin_token
// set and not given), the page still follows its own uploads' tasks with GET /tasks/<id>.

const SHOWN = 50;

/**
 * @param {{ list: HTMLElement, note: HTMLElement, state: HTMLElement,
 *   token: () => string, onTask: (task: object) => void, ownTasks: () => string[] }} options
 */
export function followTasks({ list, note, state, token, onTask, ownTasks }) {
  const rows = new Map();
  const show = (task) => {
    let row = rows.get(task.id);
    if (!row) {
      row = newRow(task);
      rows.set(task.id, row);
      list.prepend(row.li);
      while (rows.size > SHOWN) {
        const [oldest] = rows.keys();
        rows.get(oldest).li.remove();
        rows.delete(oldest);
      }
    }
    row.li.dataset.status = task.status;
    row.status.textContent = task.status;
    row.status.className = `status ${task.status}`;
    row.status.title = task.error ? task.error.message : '';
    onTask(task);
  };
  const say = (text, kind) => {
    state.textContent = text;
    state.className = `state ${kind}`;
  };
  let generation = 0;
  const connect = async () => {
    const mine = ++generation;
    try {
      const headers = token() ? { Authorization: `Bearer ${token()}` } : {};
      const res = await fetch('/events', { headers, cache: 'no-store' });
      if (res.status === 401 || res.status === 403) return refused(mine, res);
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      note.hidden = true;
      say('live', 'live');
      await readEvents(res.body, show, () => mine !== generation);
    } catch {
      // the agent went away (a restart): said, and tried again below
    }
    if (mine !== generation) return;
    say('agent unreachable: trying again…', 'down');
    setTimeout(() => void connect(), 2000);
  };
  // Refused: the page's own tasks are polled instead, until a token is given.
  const refused = async (mine, res) => {
    const message = await res.json().then((body) => body.error.message, () => `HTTP ${res.status}`);
    note.textContent = `The live list of all tasks is not open to this page (${message}). Your own uploads' tasks are followed here.`;
    note.hidden = false;
    say('following your tasks', 'live');
    while (mine === generation) {
      for (const id of ownTasks()) {
        const task = await fetch(`/tasks/${id}`, { cache: 'no-store' }).then((r) => (r.ok ? r.json() : undefined), () => undefined);
        if (task) show(task);
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  };
  void connect();
  return { reconnect: () => void connect() };
}

async function readEvents(body, onTask, stale) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done || stale()) {
      await reader.cancel().catch(() => undefined);
      return;
    }
    buffer += value;
    const blocks = buffer.split('\n\n');
    buffer = blocks.pop() ?? '';
    for (const block of blocks) {
      const data = /^event: task\ndata: (.*)$/m.exec(block)?.[1];
      if (data) onTask(JSON.parse(data));
    }
  }
}

function newRow(task) {
  const li = document.createElement('li');
  li.className = 'task';
  li.dataset.id = task.id;
  const dest = document.createElement('span');
  dest.className = 'dest';
  dest.textContent = `${task.dest} → ${task.target}`;
  const status = document.createElement('span');
  li.append(dest, status);
  return { li, status };
}
