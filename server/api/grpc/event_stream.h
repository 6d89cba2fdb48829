#ifndef SWITCHYARD_SERVER_API_GRPC_EVENT_STREAM_H_
#define SWITCHYARD_SERVER_API_GRPC_EVENT_STREAM_H_

// StreamEvents on gRPC's callback API: a reactor that hands requests to the
// delivery engine and writes what the engine sends, one write in flight at a
// time. No reaction blocks: the engine queues input and sends from its own
// thread.

#include <grpcpp/support/server_callback.h>

#include "absl/status/statusor.h"
#include "server/common/scope.h"
#include "server/delivery/engine.h"
#include "switchyard/v1/gateway.pb.h"

namespace switchyard::api {

using EventStreamReactor =
    grpc::ServerBidiReactor<v1::StreamEventsRequest, v1::StreamEventsResponse>;

// A reactor for the call of `context`, owned by gRPC (it deletes itself when
// done). `authorize` tells the caller's scope, or the error that ends the
// call; it runs on threads of the engine (see DeliveryEngine::Authorizer).
// `engine` must outlive the call.
EventStreamReactor* NewEventStream(grpc::CallbackServerContext* context,
                                   delivery::DeliveryEngine& engine,
                                   delivery::DeliveryEngine::Authorizer authorize);

}  // namespace switchyard::api

#endif  // SWITCHYARD_SERVER_API_GRPC_EVENT_STREAM_H_
