// What the connection of every stream pool shares (http1_pool.cc, http2_pool.cc): an upstream
// net::Connection with a client codec on it, the codec writing through the connection and
// hearing of its watermarks. Internal to core/upstream. Worker-local; owned by its pool.
#pragma once

#include <memory>

#include "core/http/codec.h"
#include "core/net/connection.h"

namespace ferry::core::upstream {

class PoolConnection : public net::ConnectionCallbacks, public http::CodecIo, public http::ClientConnectionCallbacks {
 public:
  // The subclass makes codec_ (it needs `*this` as the codec's CodecIo and callbacks).
  explicit PoolConnection(std::shared_ptr<net::Connection> conn) : conn_(std::move(conn)) { conn_->setCallbacks(this); }
  ~PoolConnection() override {
    conn_->setCallbacks(nullptr);
    conn_->close(net::Connection::CloseType::kNoFlush);
  }
  PoolConnection(const PoolConnection&) = delete;
  PoolConnection& operator=(const PoolConnection&) = delete;

  // net::ConnectionCallbacks (onData and onEvent are the pool's business)
  void onAboveWriteHighWatermark() override { codec_->onConnectionWatermark(true); }
  void onBelowWriteLowWatermark() override { codec_->onConnectionWatermark(false); }
  // http::CodecIo
  void write(Buffer& data, bool end_stream) override { conn_->write(data, end_stream); }
  void closeConnection(bool flush) override {
    conn_->close(flush ? net::Connection::CloseType::kFlushWrite : net::Connection::CloseType::kNoFlush);
  }
  void readDisable(bool disable) override { conn_->readDisable(disable); }

  std::shared_ptr<net::Connection> conn_;
  std::unique_ptr<http::ClientConnection> codec_;
};

}  // namespace ferry::core::upstream
