// The publisher: writes a compiled snapshot to the config bucket as the next revision, only while this controller
// holds the lease, and reads the head the bucket holds (on taking the lead, and after a conflict) so it numbers the
// next revision from what is really there.
import { fromPromise } from "xstate";
import type { ConfigStore, HeadEntry } from "../../control/bus/config_store.ts";
import type { EncodedSnapshot } from "../../control/bus/config_snapshot.ts";

export class NotLeaderError extends Error {
  override readonly name = "NotLeaderError";
}

export interface PublisherInput {
  readonly store: ConfigStore;
  readonly encoded: EncodedSnapshot;
  /** The head this controller last read or wrote. */
  readonly previous: HeadEntry | undefined;
  readonly id: string;
  readonly leading: () => boolean;
}

export const publisherActor = fromPromise<HeadEntry, PublisherInput>(async ({ input }) => {
  if (!input.leading()) throw new NotLeaderError("Not publishing: this controller does not hold the lease");
  return await input.store.publish(input.encoded, input.previous, input.id);
});

export const headReaderActor = fromPromise<HeadEntry | undefined, { readonly store: ConfigStore }>(({ input }) =>
  input.store.readHead()
);
