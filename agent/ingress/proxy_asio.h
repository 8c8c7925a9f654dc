#pragma once

// The Boost.Asio/Beast pieces the proxy's private files share, in one place. <utility> comes
// first: Boost 1.74's coroutine headers use std::exchange without including it.

// clang-format off
#include <utility>
#include <chrono>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
// clang-format on

namespace skiff::ingress::proxy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

// One concrete executor for everything the proxy does: a proxy thread's io_context. The
// proxy's sockets, timers and coroutines use it instead of Asio's type-erased default
// (any_io_executor), whose every completion goes through a polymorphic wrapper — a cost
// paid several times per proxied request.
using Executor = asio::io_context::executor_type;
template <typename T>
using Task = asio::awaitable<T, Executor>;
inline constexpr asio::use_awaitable_t<Executor> kUseAwaitable;
using Socket = asio::basic_stream_socket<tcp, Executor>;
using Acceptor = asio::basic_socket_acceptor<tcp, Executor>;
using Timer = asio::basic_waitable_timer<std::chrono::steady_clock,
                                         asio::wait_traits<std::chrono::steady_clock>, Executor>;

// Every asynchronous operation reports through an error_code (no exceptions).
inline auto Await(error_code& ec) { return asio::redirect_error(kUseAwaitable, ec); }

}  // namespace skiff::ingress::proxy
