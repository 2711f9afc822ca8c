// What the user gave the page: files and whole folders, from a drop or from the two
// pickers, each with the relative path it lands at under the route's dest.

/** @typedef {{ file: File, path: string }} Picked */

/**
 * The files of a drop, folders walked. The entries must be taken while the drop event
 * runs (its DataTransfer is emptied after), hence the two steps.
 * @param {DataTransfer} transfer
 * @returns {() => Promise<Picked[]>}
 */
export function takeDrop(transfer) {
  const entries = [...transfer.items].map((item) => item.webkitGetAsEntry?.()).filter(Boolean);
  const files = [...transfer.files];
  return async () => {
    if (entries.length === 0) return files.map((file) => ({ file, path: file.name }));
    const picked = [];
    for (const entry of entries) await walk(entry, picked);
    return picked;
  };
}

/** @param {FileList} list from an <input type=file>, with webkitdirectory or not */
export function takeInput(list) {
  return [...list].map((file) => ({ file, path: file.webkitRelativePath || file.name }));
}

async function walk(entry, picked) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    picked.push({ file, path: entry.fullPath.replace(/^\//, '') });
    return;
  }
  if (!entry.isDirectory) return;
  const reader = entry.createReader();
  // readEntries answers in batches (100 in Chromium) until an empty one.
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (batch.length === 0) return;
    for (const child of batch) await walk(child, picked);
  }
}
