// PerThreadPooled<T>: class-specific operator new/delete that recycle T's memory through a
// per-thread free list, for objects made and destroyed once per request (the stream, the
// router, the HTTP filters). Only the memory is reused: every object is constructed and
// destroyed as usual, so a reused block carries no state of the object that had it before.
// Thread affinity: like Buffer slices, a block freed on another thread goes to that thread's
// list. Each list keeps at most kMaxFree blocks (a burst beyond it is freed), and is emptied
// when its thread ends. Under AddressSanitizer the blocks on a list are poisoned, so a use
// after destruction is still reported.
//
//   class Router final : public HttpFilter, public core::PerThreadPooled<Router> { ... };
#pragma once

#include <cstddef>

#include "core/asan.h"

namespace ferry::core {

template <typename T, size_t kMaxFree = 256>
class PerThreadPooled {
 public:
  static void* operator new(size_t n) {
    static_assert(alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__, "over-aligned types are not pooled");
    static_assert(sizeof(T) >= sizeof(Node), "too small to pool");
    if (n != sizeof(T) || State::gone) return ::operator new(n);
    State& s = state();
    if (s.head == nullptr) return ::operator new(n);
    Node* b = s.head;
    unpoison(b);
    s.head = b->next;
    --s.size;
    return b;
  }
  static void operator delete(void* p, size_t n) {
    if (p == nullptr) return;
    if (n != sizeof(T) || State::gone) {
      ::operator delete(p);
      return;
    }
    State& s = state();
    if (s.size >= kMaxFree) {
      ::operator delete(p);
      return;
    }
    Node* b = static_cast<Node*>(p);
    b->next = s.head;
    s.head = b;
    ++s.size;
    poison(b);
  }

 private:
  struct Node {
    Node* next;
  };
  struct State {
    Node* head = nullptr;
    size_t size = 0;
    ~State() {
      gone = true;
      while (head != nullptr) {
        Node* b = head;
        unpoison(b);
        head = b->next;
        ::operator delete(static_cast<void*>(b));
      }
    }
    // Set when this thread's list is destroyed (trivially destructible: readable after).
    static inline thread_local bool gone = false;
  };
  static State& state() {
    static thread_local State s;
    return s;
  }
  static void poison(Node* b) { asanPoison(b, sizeof(T)); }
  static void unpoison(Node* b) { asanUnpoison(b, sizeof(T)); }
};

}  // namespace ferry::core
