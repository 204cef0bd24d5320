// Broker (curvebus/broker/broker.hpp): the public façade over the Core.
#include "curvebus/broker/broker.hpp"

#include "core.hpp"

namespace curvebus::broker {

const char* broker_version() {
#ifdef CURVEBUS_VERSION
  return CURVEBUS_VERSION;
#else
  return "0.0.0";
#endif
}

Broker::Broker(Config config) : core_(std::make_unique<Core>(std::move(config))) {}
Broker::~Broker() = default;
Status Broker::start() {
  return core_->start();
}
int Broker::run() {
  return core_->run();
}
void Broker::stop() {
  core_->stop();
}
std::string Broker::endpoint() const {
  return core_->endpoint();
}

}  // namespace curvebus::broker
