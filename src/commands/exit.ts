// Exit codes (SPEC §1).
export const EXIT = { ok: 0, fatal: 1, badConfig: 2 } as const;
