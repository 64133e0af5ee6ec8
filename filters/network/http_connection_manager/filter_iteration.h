// FilterIteration: one direction of a stream's filter chain (the request through the filters
// in order, or the response through them in reverse). Positions 0..n-1; the last one is the
// sink (request: the router; response: the codec's encoder): it takes whatever reaches it.
// Headers go first, then data, then trailers; nothing overtakes what a filter holds.
//
// What a filter's status means (core/http/filter.h):
//  - headers kStop: the headers wait at the filter, and so does any body, unseen by it, until
//    it calls resume() (an async check, a delay).
//  - headers kStopAndBuffer: the headers wait at the filter, but the body is given to it as it
//    arrives (a filter that wants the whole body before the request goes on). kContinue from
//    its data hook (or resume()) lets the headers go on, then the body.
//  - data kStop: the data waits at the filter until resume(); later data is added to it.
//  - data kStopAndBuffer: the data is held, and the filter is called again with all of it each
//    time more arrives (end_stream on the last), until it returns kContinue or resumes.
//  - trailers kStop: the trailers wait until resume(). A filter buffering data sees the
//    trailers (they end the body); what it held goes on when its trailers hook continues.
// Held bytes that wait on a kStop (not buffering) count toward the direction's flow control:
// onHold(true) when such a hold starts, onHold(false) when it ends (the stream stops reading
// its source meanwhile). Worker-local; a member of ActiveStream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/buffer.h"
#include "core/http/filter.h"

namespace ferry::filters::network {

class FilterIteration {
 public:
  class Hooks {
   public:
    virtual ~Hooks() = default;
    virtual core::http::FilterStatus iterHeaders(size_t pos, bool end_stream) = 0;
    virtual core::http::FilterStatus iterData(size_t pos, core::Buffer& data, bool end_stream) = 0;
    virtual core::http::FilterStatus iterTrailers(size_t pos) = 0;
    // The stream was answered locally or destroyed: iteration must end at once.
    virtual bool iterAborted() = 0;
    // Bytes wait on a kStop hold (true), or no longer (false).
    virtual void onHold(bool held) = 0;
  };

  static constexpr size_t kNone = SIZE_MAX;

  explicit FilterIteration(Hooks& hooks) : hooks_(hooks) {}
  void setPositions(size_t n) { n_ = n; }

  void headers(bool end_stream);
  void data(core::Buffer& data, bool end_stream);
  void trailers();
  // From the trailers hook of the filter at `pos`: data it adds, which goes on from pos + 1
  // before the trailers (they wait at `pos` until the hook returns).
  void dataBeforeTrailers(size_t pos, core::Buffer& data);
  // The filter at `pos` continues what it holds: headers, then data, then trailers.
  void resume(size_t pos);
  // Drops everything held (the stream is answered another way or destroyed).
  void reset();

  bool started() const { return started_; }

 private:
  // Data waiting at one position: seen by its filter (it stopped or buffers it) or not yet
  // (its headers wait there with kStop).
  struct Hold {
    core::Buffer data;
    bool end = false;
    bool active = false;
    bool seen = false;
    bool buffering = false;
  };

  // Runs the headers from `from` on; false if they stopped (or the stream aborted).
  bool iterateHeaders(size_t from);
  void iterateData(core::Buffer& data, bool end_stream, size_t from);
  void iterateTrailers(size_t from);
  void waitTrailers(size_t pos, bool seen);
  Hold* holdAt(size_t pos);
  void hold(size_t pos, core::Buffer* cur, bool end, bool seen, bool buffering);
  void updateFlow();

  Hooks& hooks_;
  size_t n_ = 0;
  bool started_ = false;
  bool headers_end_ = false;
  size_t headers_at_ = kNone;  // the filter holding the headers
  bool headers_buffering_ = false;
  std::vector<Hold> holds_;  // per position; made when the first hold happens
  bool trailers_waiting_ = false;
  size_t trailers_at_ = 0;
  bool trailers_seen_ = false;  // the filter at trailers_at_ has seen them
  bool flow_held_ = false;
};

}  // namespace ferry::filters::network
