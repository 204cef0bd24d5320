// The two kinds of client connection curvebus-web serves: plain TCP
// (http://, ws://) and TLS over TCP (https://, wss://, with --tls-cert).
// Sessions are templates over these two and are instantiated for both.
#pragma once

#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <type_traits>

namespace curvebus::web {

using PlainStream = boost::beast::tcp_stream;
using TlsStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;

template <class Stream>
inline constexpr bool kIsTls = std::is_same_v<Stream, TlsStream>;

}  // namespace curvebus::web
