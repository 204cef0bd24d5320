// $SYS/presence/<name>: retained JSON of v1::Presence, published through the
// normal path so subscribers and PULL see it.
#include <google/protobuf/util/json_util.h>

#include "protocol.hpp"

namespace curvebus::broker {

std::string to_json(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, options);
  return out;
}

void Protocol::publish_presence(const Session& s, bool online, CloseReason reason) {
  v1::Presence p;
  p.set_name(s.name);
  p.set_role(s.role);
  p.set_session_id(s.session_id);
  p.set_timestamp_us(now_us_);
  const std::uint32_t remaining = s.ns ? s.ns->sessions : 0;
  p.set_sessions(remaining);
  // The retained value describes the name: it stays "online" while another
  // session of the same name is alive (reason says why this one ended).
  // The name is the allow-list's (printable by construction); its presence
  // topic is built from it.
  if (online || remaining > 0) {
    p.set_state("online");
    if (!online) p.set_reason(reason_name(reason));
  } else {
    p.set_state("offline");
    p.set_reason(reason_name(reason));
  }
  publish_sys("$SYS/presence/" + s.name, to_json(p));
}

}  // namespace curvebus::broker
