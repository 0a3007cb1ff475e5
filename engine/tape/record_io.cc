// RecordBuffer, RecordWriter and TapeFileReader: records in memory, and
// byte streams over tape files.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "engine/tape/tape.h"

namespace mixtape::tape {

std::size_t page_size() {
  static const std::size_t size = [] {
    long n = ::sysconf(_SC_PAGESIZE);
    return n > 0 ? static_cast<std::size_t>(n) : std::size_t{4096};
  }();
  return size;
}

bool page_aligned(const void* data) {
  return reinterpret_cast<std::uintptr_t>(data) % page_size() == 0;
}

void RecordBuffer::Free::operator()(std::uint8_t* p) const {
  std::free(p);
}

void RecordBuffer::resize(std::size_t size) {
  if (size <= size_ && data_) {
    size_ = size;
    return;
  }
  const std::size_t page = page_size();
  const std::size_t rounded = std::max<std::size_t>((size + page - 1) / page * page, page);
  void* memory = std::aligned_alloc(page, rounded);
  if (!memory) throw std::bad_alloc();
  data_.reset(static_cast<std::uint8_t*>(memory));
  size_ = size;
}

RecordWriter::RecordWriter(Drive& drive, std::size_t record_size)
    : drive_(drive), record_size_(record_size) {
  if (record_size == 0 || record_size > kMaxRecordSize) {
    throw TapeError(TapeErrorKind::kInvalidArgument, "record size " + std::to_string(record_size) +
                                                         " is not in 1.." +
                                                         std::to_string(kMaxRecordSize));
  }
  buffer_.resize(record_size);
}

void RecordWriter::write_out(ByteSpan record) {
  WriteResult result = drive_.write_record(record);
  early_warning_ = early_warning_ || result.early_warning;
  bytes_written_ += record.size();
  ++records_written_;
}

void RecordWriter::write_out(std::span<const ByteSpan> record) {
  WriteResult result = drive_.write_record_gathered(record);
  early_warning_ = early_warning_ || result.early_warning;
  for (ByteSpan piece : record) bytes_written_ += piece.size();
  ++records_written_;
}

// Bytes without an owner complete the record in buffer_, so a tail held by
// reference moves there first.
void RecordWriter::copy_held() {
  if (held_.empty()) return;
  std::memcpy(buffer_.data(), held_.data(), held_.size());
  buffered_ = held_.size();
  held_ = {};
  held_owner_.reset();
}

void RecordWriter::write_shared(ByteSpan data, const std::shared_ptr<const void>& owner) {
  if (closed_) throw Error(drive_.name() + ": write after close of a tape file");
  ByteSpan start = held_.empty() ? ByteSpan(buffer_.data(), buffered_) : held_;
  if (!start.empty()) {
    std::size_t missing = record_size_ - start.size();
    if (data.size() < missing) return write(data);
    const ByteSpan record[2] = {start, data.first(missing)};
    write_out(record);
    buffered_ = 0;
    held_ = {};
    held_owner_.reset();
    data = data.subspan(missing);
  }
  for (; data.size() >= record_size_; data = data.subspan(record_size_))
    write_out(data.first(record_size_));
  if (!data.empty()) {
    held_ = data;
    held_owner_ = owner;
  }
}

void RecordWriter::write(ByteSpan data) {
  if (closed_) throw Error(drive_.name() + ": write after close of a tape file");
  copy_held();
  while (!data.empty()) {
    if (buffered_ == 0 && data.size() >= record_size_) {
      write_out(data.first(record_size_));  // whole records need no copy
      data = data.subspan(record_size_);
      continue;
    }
    std::size_t n = std::min(record_size_ - buffered_, data.size());
    std::memcpy(buffer_.data() + buffered_, data.data(), n);
    buffered_ += n;
    data = data.subspan(n);
    if (buffered_ == record_size_) {
      write_out(ByteSpan(buffer_.data(), buffered_));
      buffered_ = 0;
    }
  }
}

void RecordWriter::close() {
  if (closed_) return;
  if (!held_.empty()) {
    write_out(held_);
    held_ = {};
    held_owner_.reset();
  }
  if (buffered_ > 0) {
    write_out(ByteSpan(buffer_.data(), buffered_));
    buffered_ = 0;
  }
  WriteResult result = drive_.write_filemarks(1);
  early_warning_ = early_warning_ || result.early_warning;
  closed_ = true;
}

TapeFileReader::TapeFileReader(Drive& drive, std::size_t buffer_size)
    : drive_(drive), buffer_size_(buffer_size) {
  if (buffer_size == 0) {
    throw TapeError(TapeErrorKind::kInvalidArgument, "tape read buffer must not be empty");
  }
}

std::size_t TapeFileReader::read(MutableByteSpan out) {
  if (out.empty()) return 0;
  while (begin_ == end_) {
    if (ended_) return 0;
    // A span that can hold any record is filled straight from the drive.
    const bool direct = out.size() >= buffer_size_;
    if (!direct && buffer_.size() != buffer_size_) buffer_.resize(buffer_size_);
    ReadResult r = drive_.read_record(direct ? out : buffer_.span());
    switch (r.kind) {
      case ReadKind::kData:
        ++records_read_;
        bytes_read_ += r.size;
        if (direct) return r.size;
        begin_ = 0;
        end_ = r.size;
        break;
      case ReadKind::kFilemark:
        ended_ = true;
        break;
      case ReadKind::kEndOfData:
        ended_ = true;
        ended_at_eod_ = true;
        break;
    }
  }
  std::size_t n = std::min(out.size(), end_ - begin_);
  std::memcpy(out.data(), buffer_.data() + begin_, n);
  begin_ += n;
  return n;
}

}  // namespace mixtape::tape
