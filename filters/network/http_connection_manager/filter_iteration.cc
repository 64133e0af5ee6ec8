#include "filters/network/http_connection_manager/filter_iteration.h"

namespace ferry::filters::network {
using core::Buffer;
using core::http::FilterStatus;

FilterIteration::Hold* FilterIteration::holdAt(size_t pos) {
  if (pos >= holds_.size() || !holds_[pos].active) return nullptr;
  return &holds_[pos];
}

void FilterIteration::headers(bool end_stream) {
  started_ = true;
  headers_end_ = end_stream;
  iterateHeaders(0);
}

bool FilterIteration::iterateHeaders(size_t from) {
  for (size_t p = from; p < n_; ++p) {
    FilterStatus st = hooks_.iterHeaders(p, headers_end_);
    if (hooks_.iterAborted()) return false;
    if (p + 1 == n_) break;  // the sink
    if (st == FilterStatus::kContinue) continue;
    headers_at_ = p;
    headers_buffering_ = st == FilterStatus::kStopAndBuffer;
    return false;
  }
  headers_at_ = kNone;
  return true;
}

void FilterIteration::data(Buffer& data, bool end_stream) { iterateData(data, end_stream, 0); }

void FilterIteration::iterateData(Buffer& data, bool end_stream, size_t from) {
  Buffer pass;
  Buffer* cur = &data;
  bool end = end_stream;
  for (size_t p = from; p < n_; ++p) {
    if (headers_at_ == p && !headers_buffering_) {  // the headers wait here: the body waits with them, unseen
      hold(p, cur, end, false, false);
      return;
    }
    Hold* h = holdAt(p);
    if (h != nullptr) {  // data waits here already: this joins it, in order
      if (cur != &h->data) h->data.move(*cur);
      h->end = h->end || end;
      if (!h->buffering || !h->seen) {
        updateFlow();
        return;  // waits for resume()
      }
      cur = &h->data;
      end = h->end;
    }
    FilterStatus st = hooks_.iterData(p, *cur, end);
    if (hooks_.iterAborted()) return;
    if (p + 1 == n_) return;  // the sink took it
    if (st != FilterStatus::kContinue) {
      hold(p, cur, end, true, st == FilterStatus::kStopAndBuffer);
      return;
    }
    if (h != nullptr) {  // it lets go of what it held
      h->active = false;
      pass.move(h->data);
      cur = &pass;
      updateFlow();
    }
    if (headers_at_ == p) {
      // A filter that held the headers to see the body continues: the headers go first.
      headers_at_ = kNone;
      if (!iterateHeaders(p + 1) && hooks_.iterAborted()) return;
    }
  }
}

void FilterIteration::hold(size_t pos, Buffer* cur, bool end, bool seen, bool buffering) {
  if (holds_.size() < n_) holds_.resize(n_);
  Hold& h = holds_[pos];
  if (cur != &h.data) h.data.move(*cur);
  h.end = h.end || end;
  h.active = true;
  h.seen = seen;
  h.buffering = buffering;
  updateFlow();
}

void FilterIteration::dataBeforeTrailers(size_t pos, Buffer& data) {
  if (!trailers_waiting_ || pos + 1 >= n_) {
    data.clear();
    return;
  }
  iterateData(data, false, pos + 1);
}

void FilterIteration::trailers() {
  trailers_waiting_ = true;
  trailers_at_ = 0;
  trailers_seen_ = false;
  iterateTrailers(0);
}

void FilterIteration::iterateTrailers(size_t from) {
  for (size_t p = from; p < n_; ++p) {
    const bool seen = p == from && trailers_seen_ && trailers_at_ == p;
    if (!seen) {
      Hold* h = holdAt(p);
      if ((headers_at_ == p && !headers_buffering_) || (h != nullptr && !(h->seen && h->buffering))) {
        waitTrailers(p, false);  // what is held here goes first
        return;
      }
      FilterStatus st = hooks_.iterTrailers(p);
      if (hooks_.iterAborted()) return;
      if (p + 1 == n_) {
        trailers_waiting_ = false;
        return;
      }
      if (st != FilterStatus::kContinue) {
        waitTrailers(p, true);
        return;
      }
    }
    // The filter lets the trailers go: what it held for the whole body goes first.
    if (headers_at_ == p) {
      headers_at_ = kNone;
      if (!iterateHeaders(p + 1) && hooks_.iterAborted()) return;
    }
    if (Hold* h = holdAt(p)) {
      Buffer b;
      b.move(h->data);
      const bool end = h->end;
      h->active = false;
      updateFlow();
      iterateData(b, end, p + 1);
      if (hooks_.iterAborted()) return;
    }
  }
}

void FilterIteration::waitTrailers(size_t pos, bool seen) {
  trailers_at_ = pos;
  trailers_seen_ = seen;
}

void FilterIteration::resume(size_t pos) {
  if (pos >= n_) return;
  if (headers_at_ == pos) {
    headers_at_ = kNone;
    if (!iterateHeaders(pos + 1) && hooks_.iterAborted()) return;
  }
  if (Hold* h = holdAt(pos)) {
    Buffer b;
    b.move(h->data);
    const bool end = h->end;
    const bool seen = h->seen;
    h->active = false;
    updateFlow();
    iterateData(b, end, seen ? pos + 1 : pos);
    if (hooks_.iterAborted()) return;
  }
  if (trailers_waiting_ && trailers_at_ == pos) iterateTrailers(pos);
}

void FilterIteration::reset() {
  for (auto& h : holds_) {
    h.active = false;
    h.data.clear();
  }
  headers_at_ = kNone;
  trailers_waiting_ = false;
  updateFlow();
}

void FilterIteration::updateFlow() {
  bool held = false;
  for (const auto& h : holds_) held = held || (h.active && !h.buffering && !h.data.empty());
  if (held == flow_held_) return;
  flow_held_ = held;
  hooks_.onHold(held);
}

}  // namespace ferry::filters::network
