// Thread side of the image-folder loader's pool: decodes the batches it is sent (image-decode.ts)
// and moves the planes back to the loader instead of copying them.
import { decodeBatch, decodeReplyTransfer, type DecodeReply, type DecodeRequest } from './image-decode.ts';
import { serveThread } from './thread-pool.ts';

serveThread<DecodeRequest, DecodeReply>(decodeBatch, { transferOf: decodeReplyTransfer });
