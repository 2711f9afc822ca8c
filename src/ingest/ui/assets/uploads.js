// Every picked file is a tus upload (tus-js-client's browser build) with a row of its
// own: a progress bar, pause and resume. A few run at once, the rest wait their turn.
// tus-js-client keeps each upload's URL in localStorage under a fingerprint of the
// route, the relative path, the size and the date of the file: the same file dropped
// again after a reload, or while the agent restarts, goes on where its bytes stop.

const CHUNK_BYTES = 8 * 2 ** 20;
const AT_ONCE = 3;
// Long enough to ride out an agent restart.
const RETRY_DELAYS = [0, 1000, 2000, 4000, 8000, 15000, 30000, 60000];

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
function size(bytes) {
  const power = Math.min(UNITS.length - 1, Math.floor(Math.log2(Math.max(1, bytes)) / 10));
  const value = bytes / 2 ** (10 * power);
  return `${power === 0 ? value : value.toFixed(value < 10 ? 1 : 0)} ${UNITS[power]}`;
}

/**
 * @param {{ list: HTMLElement, onChange: () => void, knownTask: (id: string) => object | undefined }} options
 */
export function createUploads({ list, onChange, knownTask }) {
  const items = [];
  const taskChanged = (task) => {
    for (const item of items.filter((i) => i.task === task.id)) {
      item.row.li.dataset.taskStatus = task.status;
      show(item, task.status === 'done' ? `landed at ${task.dest}` : `task ${task.status}${task.error ? `: ${task.error.message}` : ''}`);
    }
  };
  const pump = () => {
    let running = items.filter((item) => item.state === 'running').length;
    for (const item of items) {
      if (running >= AT_ONCE) break;
      if (item.state !== 'waiting') continue;
      running += 1;
      void begin(item);
    }
    onChange();
  };
  const finished = (item, state, info) => {
    item.state = state;
    show(item, info);
    // Its task's events may have come before the answer that named it.
    const task = item.task && knownTask(item.task);
    if (task) taskChanged(task);
    pump();
  };
  const begin = async (item) => {
    item.state = 'running';
    show(item, item.upload ? 'going on…' : 'starting…');
    item.upload ??= newUpload(item, { finished, pump });
    const previous = await item.upload.findPreviousUploads().catch(() => []);
    if (previous.length > 0 && !item.upload.url) item.upload.resumeFromPreviousUpload(previous[0]);
    if (item.state === 'running') item.upload.start();
  };
  const pause = (item) => {
    if (item.state === 'running') void item.upload?.abort();
    item.state = 'paused';
    show(item, 'paused');
  };
  const toggle = (item) => {
    if (item.state === 'running' || item.state === 'waiting') pause(item);
    else if (item.state === 'paused' || item.state === 'failed') {
      item.state = 'waiting';
      show(item, 'waiting for its turn');
    }
    pump();
  };
  return {
    /** @param {{file: File, path: string}[]} picked */
    add(picked, route, token) {
      for (const { file, path } of picked) {
        const item = { file, path, route, token, state: 'waiting', row: newRow(path, file.size) };
        item.row.button.addEventListener('click', () => toggle(item));
        items.push(item);
        list.append(item.row.li);
        show(item, 'waiting for its turn');
      }
      pump();
    },
    pauseAll() {
      items.filter((item) => item.state === 'running' || item.state === 'waiting').forEach(pause);
      pump();
    },
    get active() {
      return items.filter((item) => item.state === 'running' || item.state === 'waiting').length;
    },
    /** A task changed (GET /events or GET /tasks/<id>): the rows that became it say so. */
    taskChanged,
    /** Tasks of this page's uploads not done or failed yet. */
    pendingTasks() {
      return items.filter((i) => i.task && !['done', 'failed'].includes(i.row.li.dataset.taskStatus)).map((i) => i.task);
    },
  };
}

function newUpload(item, { finished }) {
  const { file, path, route, token } = item;
  let firstPatch = true;
  return new window.tus.Upload(file, {
    endpoint: new URL(route.path, window.location.href).href,
    chunkSize: CHUNK_BYTES,
    retryDelays: RETRY_DELAYS,
    metadata: { filename: path, filetype: file.type || 'application/octet-stream' },
    headers: token ? { Authorization: `Bearer ${token}` } : {},
    fingerprint: async () => ['stevedore', route.path, path, file.size, file.lastModified].join('|'),
    storeFingerprintForResuming: true,
    removeFingerprintOnSuccess: true,
    onBeforeRequest(req) {
      if (req.getMethod() !== 'PATCH' || !firstPatch) return;
      firstPatch = false;
      const offset = Number(req.getHeader('Upload-Offset'));
      if (offset > 0) item.row.li.dataset.resumedFrom = String(offset);
    },
    onProgress(sent, total) {
      const percent = total === 0 ? 100 : Math.floor((sent / total) * 100);
      item.row.progress.value = percent;
      const resumed = item.row.li.dataset.resumedFrom;
      show(item, `${percent}% · ${size(sent)} of ${size(total)}${resumed ? ` · resumed at ${size(Number(resumed))}` : ''}`);
    },
    onAfterResponse(_req, res) {
      const task = /^<\/tasks\/([A-Za-z0-9_-]{22})>/.exec(res.getHeader('Link') ?? '')?.[1];
      if (task) item.task = item.row.li.dataset.task = task;
    },
    onSuccess() {
      item.row.progress.value = 100;
      finished(item, 'sent', 'sent: waiting for its task');
    },
    onError(error) {
      finished(item, 'failed', `failed: ${reason(error)} (press Retry)`);
    },
  });
}

// The agent's JSON error when there is one, else what the browser said.
function reason(error) {
  const body = error.originalResponse?.getBody?.();
  try {
    return JSON.parse(body).error.message;
  } catch {
    return error.originalResponse ? `HTTP ${error.originalResponse.getStatus()}` : 'the connection failed';
  }
}

function newRow(path, bytes) {
  const li = document.createElement('li');
  li.className = 'upload';
  li.dataset.path = path;
  const name = document.createElement('span');
  name.className = 'name';
  name.textContent = `${path} (${size(bytes)})`;
  const button = document.createElement('button');
  button.type = 'button';
  const progress = document.createElement('progress');
  progress.max = 100;
  progress.value = 0;
  const info = document.createElement('span');
  info.className = 'info';
  li.append(name, button, progress, info);
  return { li, button, progress, info };
}

const BUTTON = { running: 'Pause', waiting: 'Pause', paused: 'Resume', failed: 'Retry' };

function show(item, info) {
  const { li, button } = item.row;
  li.dataset.state = item.state;
  li.className = `upload ${item.state}`;
  button.textContent = BUTTON[item.state] ?? '';
  button.hidden = !BUTTON[item.state];
  item.row.info.textContent = info;
}
