#pragma once

// The Boost.Asio/Beast pieces the proxy's private files share, in one place. <utility> comes
// first: Boost 1.74's coroutine headers use std::exchange without including it.

// clang-format off
#include <utility>
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

// Every asynchronous operation reports through an error_code (no exceptions).
inline auto Await(error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

}  // namespace skiff::ingress::proxy
