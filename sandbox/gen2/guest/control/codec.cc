#include "sandbox/gen2/guest/control/codec.h"

#include <cstring>

#include "sandbox/gen2/guest/control/validate.h"

namespace skiff::gen2::control {

namespace {

// ---- encoding ----

class Writer {
 public:
  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U16(uint16_t v) { Le(v, 2); }
  void U32(uint32_t v) { Le(v, 4); }
  void I32(int32_t v) { Le(static_cast<uint32_t>(v), 4); }
  void U64(uint64_t v) { Le(v, 8); }
  void Bool(bool v) { U8(v ? 1 : 0); }
  void String(const std::string& s) {
    U32(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  void Strings(const std::vector<std::string>& list) {
    U32(static_cast<uint32_t>(list.size()));
    for (const std::string& s : list) String(s);
  }
  template <size_t N>
  void Bytes(const std::array<uint8_t, N>& a) {
    out_.append(reinterpret_cast<const char*>(a.data()), N);
  }
  std::string& out() { return out_; }

 private:
  void Le(uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  std::string out_;
};

struct Encoder {
  Writer& w;
  void operator()(const InstanceSpec& s) const {
    w.Strings(s.argv);
    w.Strings(s.env);
    w.String(s.working_dir);
    w.U32(s.uid);
    w.U32(s.gid);
    w.String(s.hostname);
    w.U16(s.port);
    w.Bool(s.network.enabled);
    w.Bytes(s.network.address);
    w.U8(s.network.prefix_length);
    w.Bytes(s.network.gateway);
    w.Bytes(s.network.mac);
    w.U64(s.tmpfs_bytes);
    w.String(s.root_device);
    w.String(s.root_fstype);
    w.U32(static_cast<uint32_t>(s.files.size()));
    for (const GuestFile& f : s.files) {
      w.String(f.path);
      w.String(f.content);
    }
  }
  void operator()(const SignalRequest& s) const { w.I32(s.signo); }
  void operator()(const Hello& h) const { w.U32(h.version); }
  void operator()(const Started& s) const { w.I32(s.pid); }
  void operator()(const LogChunk& l) const {
    w.U8(static_cast<uint8_t>(l.stream));
    w.String(l.data);
  }
  void operator()(const Exited& e) const {
    w.Bool(e.signaled);
    w.I32(e.value);
  }
  void operator()(const Error& e) const {
    w.U8(static_cast<uint8_t>(e.step));
    w.I32(e.err);
    w.String(e.detail);
  }
};

// ---- decoding ----

// Reads fields from a payload; the first failure sticks (every later read fails too).
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  bool U8(uint8_t* v) {
    uint64_t x;
    if (!Le(1, &x)) return false;
    *v = static_cast<uint8_t>(x);
    return true;
  }
  bool U16(uint16_t* v) {
    uint64_t x;
    if (!Le(2, &x)) return false;
    *v = static_cast<uint16_t>(x);
    return true;
  }
  bool U32(uint32_t* v) {
    uint64_t x;
    if (!Le(4, &x)) return false;
    *v = static_cast<uint32_t>(x);
    return true;
  }
  bool I32(int32_t* v) {
    uint32_t x;
    if (!U32(&x)) return false;
    *v = static_cast<int32_t>(x);
    return true;
  }
  bool U64(uint64_t* v) { return Le(8, v); }
  bool Bool(bool* v) {
    uint8_t x;
    if (!U8(&x)) return false;
    if (x > 1) return Fail("a bool that is neither 0 nor 1");
    *v = x == 1;
    return true;
  }
  bool String(std::string* s) {
    uint32_t n;
    if (!U32(&n)) return false;
    if (n > in_.size() - pos_) return Fail("a string longer than the rest of the frame");
    s->assign(in_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  // A count of elements that each take at least `min_bytes`: no more than fit in the rest.
  bool Count(uint32_t* n, size_t min_bytes) {
    if (!U32(n)) return false;
    if (*n > (in_.size() - pos_) / min_bytes) return Fail("a count larger than the frame holds");
    return true;
  }
  bool Strings(std::vector<std::string>* list) {
    uint32_t n;
    if (!Count(&n, 4)) return false;
    list->clear();
    for (uint32_t i = 0; i < n; ++i) {
      list->emplace_back();
      if (!String(&list->back())) return false;
    }
    return true;
  }
  template <size_t N>
  bool Bytes(std::array<uint8_t, N>* a) {
    if (N > in_.size() - pos_) return Fail("truncated");
    std::memcpy(a->data(), in_.data() + pos_, N);
    pos_ += N;
    return true;
  }

  bool AtEnd() const { return pos_ == in_.size(); }
  const char* error() const { return error_; }
  bool Fail(const char* why) {
    if (error_ == nullptr) error_ = why;
    pos_ = in_.size();
    return false;
  }

 private:
  bool Le(int bytes, uint64_t* v) {
    if (error_ != nullptr) return false;
    if (static_cast<size_t>(bytes) > in_.size() - pos_) return Fail("truncated");
    uint64_t x = 0;
    for (int i = 0; i < bytes; ++i) {
      x |= uint64_t{static_cast<uint8_t>(in_[pos_ + i])} << (8 * i);
    }
    pos_ += bytes;
    *v = x;
    return true;
  }

  std::string_view in_;
  size_t pos_ = 0;
  const char* error_ = nullptr;
};

bool DecodeSpec(Reader& r, InstanceSpec* s) {
  uint32_t files;
  bool ok = r.Strings(&s->argv) && r.Strings(&s->env) && r.String(&s->working_dir) &&
            r.U32(&s->uid) && r.U32(&s->gid) && r.String(&s->hostname) && r.U16(&s->port) &&
            r.Bool(&s->network.enabled) && r.Bytes(&s->network.address) &&
            r.U8(&s->network.prefix_length) && r.Bytes(&s->network.gateway) &&
            r.Bytes(&s->network.mac) && r.U64(&s->tmpfs_bytes) && r.String(&s->root_device) &&
            r.String(&s->root_fstype) && r.Count(&files, 8);
  if (!ok) return false;
  for (uint32_t i = 0; i < files; ++i) {
    s->files.emplace_back();
    if (!r.String(&s->files.back().path) || !r.String(&s->files.back().content)) return false;
  }
  return true;
}

// Parses the payload of a frame of `type`; false with r's error set (or *error for an
// unknown type) when it does not parse.
bool DecodePayload(uint8_t type, Reader& r, Message* out, std::string* error) {
  switch (static_cast<MessageType>(type)) {
    case MessageType::kSpec: {
      InstanceSpec s;
      if (!DecodeSpec(r, &s)) return false;
      *out = std::move(s);
      return true;
    }
    case MessageType::kSignal: {
      SignalRequest s;
      if (!r.I32(&s.signo)) return false;
      *out = s;
      return true;
    }
    case MessageType::kHello: {
      Hello h;
      if (!r.U32(&h.version)) return false;
      *out = h;
      return true;
    }
    case MessageType::kStarted: {
      Started s;
      if (!r.I32(&s.pid)) return false;
      *out = s;
      return true;
    }
    case MessageType::kLog: {
      LogChunk l;
      uint8_t stream;
      if (!r.U8(&stream) || !r.String(&l.data)) return false;
      l.stream = static_cast<LogStream>(stream);
      *out = std::move(l);
      return true;
    }
    case MessageType::kExited: {
      Exited e;
      if (!r.Bool(&e.signaled) || !r.I32(&e.value)) return false;
      *out = e;
      return true;
    }
    case MessageType::kError: {
      Error e;
      uint8_t step;
      if (!r.U8(&step) || !r.I32(&e.err) || !r.String(&e.detail)) return false;
      e.step = static_cast<InitStep>(step);
      *out = std::move(e);
      return true;
    }
  }
  *error = "frame type " + std::to_string(type) + ": unknown";
  return false;
}

uint32_t ReadLength(std::string_view buffer) {
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n |= uint32_t{static_cast<uint8_t>(buffer[i])} << (8 * i);
  return n;
}

}  // namespace

std::string EncodeFrame(const Message& message) {
  Writer w;
  w.U32(0);  // the length, patched below
  w.U8(static_cast<uint8_t>(TypeOf(message)));
  std::visit(Encoder{w}, message);
  std::string& out = w.out();
  uint32_t length = static_cast<uint32_t>(out.size() - 4);
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((length >> (8 * i)) & 0xff);
  return std::move(out);
}

DecodeStatus DecodeFrame(std::string_view buffer, Message* out, size_t* consumed,
                         std::string* error) {
  if (buffer.size() < 4) return DecodeStatus::kNeedMore;
  uint32_t length = ReadLength(buffer);
  if (length == 0 || length > kMaxFrameLength) {
    *error =
        "frame length " + std::to_string(length) + " not in 1.." + std::to_string(kMaxFrameLength);
    return DecodeStatus::kError;
  }
  if (buffer.size() < 4 + size_t{length}) return DecodeStatus::kNeedMore;
  uint8_t type = static_cast<uint8_t>(buffer[4]);
  std::string type_name = "frame type " + std::to_string(type);
  Reader r(buffer.substr(kFrameHeaderBytes, length - 1));
  Message message;
  std::string type_error;
  if (!DecodePayload(type, r, &message, &type_error)) {
    *error = !type_error.empty() ? type_error : type_name + ": " + r.error();
    return DecodeStatus::kError;
  }
  if (!r.AtEnd()) {
    *error = type_name + ": bytes left over after the message";
    return DecodeStatus::kError;
  }
  if (std::string invalid = ValidateMessage(message); !invalid.empty()) {
    *error = std::move(invalid);
    return DecodeStatus::kError;
  }
  *out = std::move(message);
  *consumed = 4 + size_t{length};
  return DecodeStatus::kMessage;
}

DecodeStatus FrameReader::Next(Message* out, std::string* error) {
  if (failed_) {
    *error = failure_;
    return DecodeStatus::kError;
  }
  size_t consumed = 0;
  std::string_view rest(buffer_.data() + start_, buffer_.size() - start_);
  DecodeStatus status = DecodeFrame(rest, out, &consumed, error);
  if (status == DecodeStatus::kError) {
    failed_ = true;
    failure_ = *error;
    buffer_.clear();
    start_ = 0;
    return status;
  }
  if (status == DecodeStatus::kMessage) {
    start_ += consumed;
    // Compact once the consumed prefix dominates, so the buffer never grows without bound.
    if (start_ == buffer_.size()) {
      buffer_.clear();
      start_ = 0;
    } else if (start_ > 64 * 1024 && start_ * 2 > buffer_.size()) {
      buffer_.erase(0, start_);
      start_ = 0;
    }
  }
  return status;
}

}  // namespace skiff::gen2::control
