// Thread side of the image-folder loader's pool: decodes the batches it is sent (image-decode.ts)
// and moves the planes back to the loader instead of copying them.
import { basename } from 'node:path';
import { decodeBatch, decodeReplyTransfer, type DecodeReply, type DecodeRequest } from './image-decode.ts';
import { serveThread } from './thread-pool.ts';

// Test-only: STRIDE_TEST_DECODE_CRASH=<file name> makes this thread die, as a crash or an
// out-of-memory of a decoder would, on a batch holding that file. Inert unless set, which nobody
// does outside the loader's tests.
const crashOn = process.env.STRIDE_TEST_DECODE_CRASH;

serveThread<DecodeRequest, DecodeReply>(
  (req) => {
    if (crashOn && req.files.some((f) => basename(f.path) === crashOn)) process.exit(70);
    return decodeBatch(req);
  },
  { transferOf: decodeReplyTransfer },
);
