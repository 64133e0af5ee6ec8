// LocalRef<T>: a reference-counted handle whose count is a plain integer, for an object that
// one worker shares among its own connections and streams and never hands to another thread.
// Taking a reference costs an increment on worker-local memory, where copying a shared_ptr
// that every worker holds would bounce its count's cache line between cores on every request.
// The object inside is immutable; it is destroyed with the last handle, on the same worker.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>

namespace ferry::core {

template <typename T>
class LocalRef {
 public:
  LocalRef() = default;
  // Wraps `value` (usually a shared_ptr copy made once per worker).
  static LocalRef make(std::shared_ptr<const T> value) {
    LocalRef r;
    r.box_ = new Box{std::move(value), 1};
    return r;
  }
  LocalRef(const LocalRef& o) : box_(o.box_) {
    if (box_ != nullptr) ++box_->refs;
  }
  LocalRef(LocalRef&& o) noexcept : box_(std::exchange(o.box_, nullptr)) {}
  LocalRef& operator=(LocalRef o) noexcept {
    std::swap(box_, o.box_);
    return *this;
  }
  ~LocalRef() { reset(); }

  void reset() {
    if (box_ != nullptr && --box_->refs == 0) delete box_;
    box_ = nullptr;
  }
  const T* get() const { return box_ != nullptr ? box_->value.get() : nullptr; }
  const T& operator*() const { return *box_->value; }
  const T* operator->() const { return box_->value.get(); }
  explicit operator bool() const { return get() != nullptr; }

 private:
  struct Box {
    std::shared_ptr<const T> value;
    uint32_t refs;
  };
  Box* box_ = nullptr;
};

}  // namespace ferry::core
