"""ZeroMQ/CZMQ certificate files and where a client finds its keys.

A certificate is CZMQ's text format: a ``curve`` section with
``public-key = "<Z85>"`` and, in the ``NAME_secret`` file only, the secret key.
A secret file readable by group or others is refused, as the C++ tools do.
"""
import os
import re
import stat

DEFAULT_ENDPOINT = "tcp://127.0.0.1:7690"
_Z85 = re.compile(r'^[0-9A-Za-z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}$')
_LINE = re.compile(r'^\s*(public|secret)-key\s*=\s*"([^"]*)"\s*$')


class KeyError_(Exception):
    """A key or certificate problem (missing file, bad format, loose mode)."""


def is_z85_key(text):
    return bool(_Z85.match(text or ""))


def read_certificate(path, need_secret=False):
    """Returns (public_key, secret_key or None) from a certificate file."""
    try:
        st = os.stat(path)
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise KeyError_("cannot read %s: %s" % (path, e.strerror)) from None
    if need_secret and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyError_("%s is readable by group or others: refusing a secret key (chmod 600 %s)" % (path, path))
    found = {}
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        m = _LINE.match(line)
        if m:
            found[m.group(1)] = m.group(2)
    public = found.get("public")
    if not is_z85_key(public):
        raise KeyError_("%s: no valid public-key" % path)
    secret = found.get("secret")
    if need_secret and not is_z85_key(secret):
        raise KeyError_("%s: no secret-key (give the NAME_secret file)" % path)
    return public, secret


def resolve_public_key(key_or_path):
    if is_z85_key(key_or_path) and not os.path.exists(key_or_path):
        return key_or_path
    return read_certificate(key_or_path)[0]


def resolve_settings(endpoint=None, server_key=None, key=None, home=None, default_key_name="dev"):
    """Flags first, then CURVEBUS_ENDPOINT / CURVEBUS_SERVER_KEY / CURVEBUS_KEY /
    CURVEBUS_HOME, then the home folder (./.curvebus) the broker's embedded
    default writes.  Returns (endpoint, server_public_key, public_key, secret_key)."""
    env = os.environ
    home = home or env.get("CURVEBUS_HOME") or "./.curvebus"
    endpoint = endpoint or env.get("CURVEBUS_ENDPOINT")
    if not endpoint:
        try:
            with open(os.path.join(home, "endpoint"), encoding="utf-8") as f:
                endpoint = f.readline().strip()
        except OSError:
            endpoint = None
        endpoint = endpoint or DEFAULT_ENDPOINT
    server_key = server_key or env.get("CURVEBUS_SERVER_KEY") or os.path.join(home, "keys", "broker")
    key = key or env.get("CURVEBUS_KEY") or os.path.join(home, "keys", default_key_name + "_secret")
    server_public = resolve_public_key(server_key)
    public, secret = read_certificate(key, need_secret=True)
    return endpoint, server_public, public, secret
