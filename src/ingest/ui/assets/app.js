// The drop page: pick a route, give its token (kept in sessionStorage only, never in
// localStorage or a cookie), drop files or folders, watch them go and land.
import { takeDrop, takeInput } from './files.js';
import { followTasks } from './tasks.js';
import { createUploads } from './uploads.js';

const $ = (id) => document.getElementById(id);
const routeSelect = $('route');
const tokenInput = $('token');
const adminInput = $('admin-token');
const drop = $('drop');

const tokenKey = () => `stevedore.token.${routeSelect.value}`;
let routes = [];

// The last state of every task seen, for uploads that learn their task's id late.
const seen = new Map();
const SEEN = 1000;
const uploads = createUploads({
  list: $('uploads'),
  onChange: () => ($('pause-all').disabled = uploads.active === 0),
  knownTask: (id) => seen.get(id),
});
const tasks = followTasks({
  list: $('tasks'),
  note: $('tasks-note'),
  state: $('link-state'),
  token: () => adminInput.value,
  onTask: (task) => {
    seen.delete(task.id);
    seen.set(task.id, task);
    if (seen.size > SEEN) seen.delete(seen.keys().next().value);
    uploads.taskChanged(task);
  },
  ownTasks: () => uploads.pendingTasks(),
});

function add(picked) {
  const route = routes.find((r) => r.path === routeSelect.value);
  if (!route || picked.length === 0) return;
  if (route.token && !tokenInput.value) {
    tokenInput.focus();
    tokenInput.setCustomValidity('this route wants its token');
    tokenInput.reportValidity();
    return;
  }
  uploads.add(picked, route, tokenInput.value);
}

async function loadRoutes() {
  const res = await fetch('/ui/routes', { cache: 'no-store' });
  ({ routes } = await res.json());
  for (const route of routes) routeSelect.append(new Option(`${route.name} (${route.path})${route.token ? '' : ', no token'}`, route.path));
  routeSelect.value = sessionStorage.getItem('stevedore.route') ?? routes[0]?.path ?? '';
  tokenInput.value = sessionStorage.getItem(tokenKey()) ?? '';
}

// Uploads a reload cut short: their URLs are in localStorage (not their files, which
// a page may not keep); dropping the same files again goes on where they stopped.
async function sayUnfinished() {
  const previous = await window.tus.defaultOptions.urlStorage.findAllUploads().catch(() => []);
  if (previous.length === 0) return;
  const names = previous.map((p) => p.metadata.filename).filter(Boolean);
  const note = $('unfinished');
  note.textContent = `${previous.length} upload(s) did not finish before: ${names.slice(0, 5).join(', ')}${names.length > 5 ? ', …' : ''}. Drop the same files on the same route to go on where they stopped.`;
  note.hidden = false;
}

routeSelect.addEventListener('change', () => {
  sessionStorage.setItem('stevedore.route', routeSelect.value);
  tokenInput.value = sessionStorage.getItem(tokenKey()) ?? '';
});
tokenInput.addEventListener('input', () => {
  tokenInput.setCustomValidity('');
  sessionStorage.setItem(tokenKey(), tokenInput.value);
});
adminInput.value = sessionStorage.getItem('stevedore.adminToken') ?? '';
adminInput.addEventListener('change', () => {
  sessionStorage.setItem('stevedore.adminToken', adminInput.value);
  tasks.reconnect();
});

drop.addEventListener('dragover', (event) => {
  event.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (event) => {
  event.preventDefault();
  drop.classList.remove('over');
  const picked = takeDrop(event.dataTransfer);
  void picked().then(add);
});
for (const [button, input] of [['pick-files', 'files'], ['pick-folder', 'folder']]) {
  $(button).addEventListener('click', () => $(input).click());
  $(input).addEventListener('change', () => {
    add(takeInput($(input).files));
    $(input).value = '';
  });
}
$('pause-all').addEventListener('click', () => uploads.pauseAll());
$('setup').addEventListener('submit', (event) => event.preventDefault());
window.addEventListener('beforeunload', (event) => {
  if (uploads.active > 0) event.preventDefault();
});

void loadRoutes();
void sayUnfinished();
