// ActiveListener: one listener's accepting socket on one worker (each worker has its own
// SO_REUSEPORT socket for the listener), its listener filters and its open connections.
// Worker-local. Owned by the worker's runtime in the server.
#pragma once

#include <list>
#include <memory>

#include "config/snapshot.h"
#include "core/event/deferred_deleter.h"
#include "core/event/poller.h"
#include "core/event/timer.h"
#include "core/event/worker_context.h"

namespace ferry::core::net {

class ActiveConnection;

class ActiveListener final : private PollHandler {
 public:
  // Takes ownership of the listening socket `fd`.
  ActiveListener(WorkerContext& ctx, std::shared_ptr<const config::Snapshot> snapshot,
                 std::shared_ptr<const config::ListenerInfo> info, int fd);
  ~ActiveListener();
  ActiveListener(const ActiveListener&) = delete;
  ActiveListener& operator=(const ActiveListener&) = delete;

  void start();
  // Closes the listening socket: new connections are refused; open ones go on.
  void stopAccepting();
  // Closes every open connection now.
  void closeAll();
  size_t connectionCount() const { return connections_.size(); }
  const std::string& name() const { return info_->cfg.name; }

  // Called by an ActiveConnection that has ended; it is destroyed soon after, outside the
  // call stack that ended it.
  void removeConnection(ActiveConnection* conn);

 private:
  void onPollEvents(uint32_t events) override;
  void onAcceptable();
  void accepted(int fd);

  WorkerContext& ctx_;
  std::shared_ptr<const config::Snapshot> snapshot_;
  std::shared_ptr<const config::ListenerInfo> info_;
  Poller& poller_;
  int lfd_;  // the listening socket, registered with the worker's Poller; -1 once closed
  bool registered_ = false;
  Timer retry_timer_;  // accept failed for lack of descriptors/memory: try again later
  std::list<std::unique_ptr<ActiveConnection>> connections_;
  DeferredDeleter<ActiveConnection> graveyard_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  bool accepting_ = false;
};

}  // namespace ferry::core::net
