#ifndef SWITCHYARD_SERVER_API_HTTP_BEAST_H_
#define SWITCHYARD_SERVER_API_HTTP_BEAST_H_

// The one include of Boost.Asio and Boost.Beast. Debian 12's Boost 1.74 Asio
// uses std::exchange without including <utility>, which GCC 12 in C++20 mode
// does not pull in on its own, so <utility> must come first.

// clang-format off
#include <utility>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
// clang-format on

#endif  // SWITCHYARD_SERVER_API_HTTP_BEAST_H_
