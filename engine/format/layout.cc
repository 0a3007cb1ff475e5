// Block mapping: docs/FORMAT.md "Finding bytes on tape".
#include "engine/format/format.h"

namespace mixtape::format {

TapePosition locate(const ArchiveGeometry& geometry, std::uint64_t plaintext_offset) {
  if (geometry.record_size == 0) throw FormatError("record size 0 in archive geometry");
  TapePosition position;
  if (geometry.encrypted) {
    // age STREAM can only be entered at a chunk boundary: find the chunk
    // holding the byte, and where that chunk's ciphertext starts.
    position.chunk = plaintext_offset / kAgeChunkSize;
    position.offset_in_chunk = plaintext_offset % kAgeChunkSize;
    position.stored_offset =
        geometry.age_header_length + kAgePayloadNonceSize + position.chunk * kAgeEncryptedChunkSize;
  } else {
    position.stored_offset = plaintext_offset;
  }
  position.block = geometry.first_block + position.stored_offset / geometry.record_size;
  position.offset_in_block = position.stored_offset % geometry.record_size;
  return position;
}

std::uint64_t age_encrypted_size(std::uint64_t header_length, std::uint64_t plaintext_size) {
  // The last chunk may be full; it is empty only when the plaintext is.
  std::uint64_t chunks =
      plaintext_size == 0 ? 1 : (plaintext_size + kAgeChunkSize - 1) / kAgeChunkSize;
  return header_length + kAgePayloadNonceSize + plaintext_size + chunks * kAgeChunkOverhead;
}

std::uint64_t record_count(std::uint64_t file_size, std::uint64_t record_size) {
  if (record_size == 0) throw FormatError("record size 0");
  return (file_size + record_size - 1) / record_size;
}

}  // namespace mixtape::format
