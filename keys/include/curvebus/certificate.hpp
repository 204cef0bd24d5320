// CURVE key pairs stored as ZeroMQ certificate files.
//
// The format is CZMQ's (ZPL text): `NAME` holds the public key, `NAME_secret`
// holds the public and the secret key, both as 40-character Z85 text in a
// `curve` section, with optional `metadata` key/values.  Files written here
// are read by CZMQ's zcert_load and vice versa.
//
// A secret certificate readable by group or others is refused, as ssh
// refuses such private keys.
#pragma once

#include <map>
#include <string>

#include "curvebus/status.hpp"

namespace curvebus {

struct KeyPair {
  std::string public_key;  // Z85, 40 characters
  std::string secret_key;  // Z85, 40 characters; empty for a public certificate
};

struct Certificate {
  KeyPair keys;
  std::map<std::string, std::string> metadata;
};

// A fresh CURVE key pair (libzmq's zmq_curve_keypair).
KeyPair generate_keypair();

// True when `key` is 40 characters of Z85 that decode to 32 bytes.
bool is_z85_key(const std::string& key);

// The public key belonging to a Z85 secret key ("" if it is not a key).
std::string public_from_secret(const std::string& secret_key);

// Writes `DIR/NAME` (mode 0644) and `DIR/NAME_secret` (mode 0600), creating
// DIR (mode 0700) if needed.  Refuses to overwrite existing files unless
// `overwrite`.  The metadata gets name = NAME unless given.
Status write_certificate(const std::string& dir, const std::string& name, const KeyPair& keys,
                         bool overwrite = false,
                         std::map<std::string, std::string> metadata = {});

// Reads a certificate file.  With `need_secret` the file must hold a secret
// key and must not be readable by group or others.
Result<Certificate> read_certificate(const std::string& path, bool need_secret);

// Accepts either a Z85 public key or the path of a certificate file and
// returns the Z85 public key.
Result<std::string> resolve_public_key(const std::string& key_or_path);

// A short, non-secret fingerprint of a public key for logs:
// "b2:" + 16 hex digits of BLAKE2b-256 over the 32 raw key bytes.
std::string key_fingerprint(const std::string& public_key_z85);

}  // namespace curvebus
