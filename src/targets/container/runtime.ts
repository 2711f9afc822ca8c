// What the container adapter needs to know of one runtime's CLI.
import type { Cli } from './cli.js';

export interface Runtime extends Cli {
  runtime: 'incus' | 'lxd' | 'docker' | 'podman';
  /** The container as configured, for messages. */
  container: string;
  /** CLI arguments that run `argv` in the container with stdin attached. */
  exec(argv: readonly string[]): string[];
  /** CLI arguments that unpack a tar stream from stdin at the container's `/` without its tar. */
  copyIn?(): string[];
  /** CLI arguments that push one host file to `dest` (with this owner and mode where `copySetsOwner`). */
  pushFile(source: string, dest: string, owner: { uid: number; gid: number }, mode: number): string[];
  /** The runtime's copies give a file the owner and mode asked (Incus's push takes them); otherwise batch.sh sets them. */
  copySetsOwner: boolean;
}
