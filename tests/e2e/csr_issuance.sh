#!/usr/bin/env bash
# ctest-labels: e2e
# Certificate issuance from a CSR (DPS "csr" -> issuedCertificateChain):
# a symmetric-key device sends an ECDSA P-384 CSR through provd-device and
# gets a chain `openssl verify` accepts against the issuing CA; bad CSRs
# from authenticated devices are 400 with a logged reason and change
# nothing; an unreadable-by-others CA key is required at start.
source "$(dirname "$0")/lib/common.bash"

DATA_DIR=$WORK/data
PKI=$WORK/pki
mkdir -p "$PKI"

# --- an issuing CA under a root, made with the openssl CLI ---
ca_ext=$'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always'
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes \
  -keyout "$PKI/root.key" -out "$PKI/root.pem" -subj "/CN=Test Fleet Root" \
  -days 30 -addext basicConstraints=critical,CA:TRUE \
  -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes \
  -keyout "$PKI/issuing.key" -out "$PKI/issuing.csr" \
  -subj "/CN=Test Fleet Issuing CA" 2>/dev/null
openssl x509 -req -in "$PKI/issuing.csr" -CA "$PKI/root.pem" \
  -CAkey "$PKI/root.key" -CAcreateserial -out "$PKI/issuing.pem" -days 30 \
  -extfile <(printf '%s\n' "$ca_ext") 2>/dev/null
cat "$PKI/issuing.pem" "$PKI/root.pem" > "$PKI/chain.pem"
chmod 600 "$PKI/issuing.key"

write_config "$WORK/provd.yaml" "$DATA_DIR"
cat >> "$WORK/provd.yaml" <<YAML
certificate_issuers:
  - { name: fleet-ca, cert: $PKI/chain.pem, key_file: $PKI/issuing.key, validity_days: 7 }
YAML

# --- the CA key must be private to its owner ---
chmod 644 "$PKI/issuing.key"
out=$("$PROVD" -c "$WORK/provd.yaml" --check-config 2>&1) && rc=0 || rc=$?
expect_eq "--check-config refuses a CA key readable by others" 2 "$rc"
check "the refusal names FILE:LINE:COL, the issuer and says why" \
  grep -q "provd.yaml:[0-9]*:[0-9]*: certificate_issuers 'fleet-ca': .*readable by group or others" <<<"$out"
chmod 600 "$PKI/issuing.key"
out=$("$PROVD" -c "$WORK/provd.yaml" --check-config 2>&1) && rc=0 || rc=$?
expect_eq "--check-config accepts the issuer" 0 "$rc"

start_provd "$WORK/provd.yaml"
check "the CA key never reaches the log" bash -c \
  "! grep -q 'PRIVATE KEY' '$WORK/provd.log' '$WORK/banner'"

reg_path() { echo "/$SCOPE/registrations/$1/register?api-version=2025-07-01-preview"; }
log_has() { grep -q "$1" "$WORK/provd.log"; }
csr_of() { # KEYFILE CN -> base64 DER
  openssl req -new -key "$1" -subj "/CN=$2" -sha384 -outform DER | base64 -w0
}
register_csr() { # REGID KEY CSR_B64
  http PUT "$(reg_path "$1")" "{\"registrationId\":\"$1\",\"csr\":\"$3\"}" \
    -H "Authorization: $(device_token "$2" "$1")"
}
registration_etag() { # REGID -> etag or "none"
  provctl registration show "$1" --json 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin).get("etag"))' 2>/dev/null || echo none
}

K=$(random_key)
provctl enrollment add dev-csr-1 --primary-key "$K" --secondary-key "$(random_key)" \
  --credential-policy fleet-ca >/dev/null && rc=0 || rc=$?
expect_eq "provctl enrollment add --credential-policy exits 0" 0 "$rc"
out=$(provctl enrollment show dev-csr-1 --json)
expect_eq "the enrollment keeps credentialPolicyName" fleet-ca "$(json_get "$out" credentialPolicyName)"

# --- provd-device: a new P-384 key, a CSR, the issued chain ---
"$PROVD_DEVICE" register --url "https://localhost:$PORT" --ca "$DATA_DIR/tls/ca.pem" \
  --scope "$SCOPE" --registration-id dev-csr-1 --symmetric-key "$K" \
  --csr-key "$WORK/dev.key" --cert-out "$WORK/dev.pem" \
  > "$WORK/device.out" 2> "$WORK/device.err" && rc=0 || rc=$?
expect_eq "provd-device register --csr-key exits 0" 0 "$rc"
[ "$rc" = 0 ] || cat "$WORK/device.err" "$WORK/provd.log" >&2
check "provd-device prints the assignment" grep -q '^assigned hub=' "$WORK/device.out"
check "provd-device prints the chain" grep -q 'BEGIN CERTIFICATE' "$WORK/device.out"
check "provd-device wrote a P-384 key, mode 600" bash -c \
  "[ \"\$(stat -c %a '$WORK/dev.key')\" = 600 ] && openssl pkey -in '$WORK/dev.key' -noout -text | grep -q 'NIST CURVE: P-384'"
expect_eq "the stored chain has leaf, issuing CA and root" 3 "$(grep -c 'BEGIN CERTIFICATE' "$WORK/dev.pem" || true)"
openssl x509 -in "$WORK/dev.pem" -out "$WORK/leaf.pem"
check "openssl verify accepts the leaf against the issuing CA" \
  openssl verify -CAfile "$PKI/root.pem" -untrusted "$PKI/issuing.pem" -purpose sslclient "$WORK/leaf.pem"
check "openssl verify accepts it with the device's own chain" \
  openssl verify -CAfile "$PKI/root.pem" -untrusted "$WORK/dev.pem" "$WORK/leaf.pem"
check "the leaf's subject is CN = dev-csr-1" bash -c \
  "openssl x509 -in '$WORK/leaf.pem' -noout -subject | grep -q 'CN *= *dev-csr-1\$'"
check "the leaf is signed with ECDSA SHA-384" bash -c \
  "openssl x509 -in '$WORK/leaf.pem' -noout -text | grep -q 'Signature Algorithm: ecdsa-with-SHA384'"
check "the leaf carries the device's key" bash -c \
  "[ \"\$(openssl x509 -in '$WORK/leaf.pem' -noout -pubkey)\" = \"\$(openssl pkey -in '$WORK/dev.key' -pubout)\" ]"
check "the leaf expires within validity_days (7)" bash -c \
  "openssl x509 -in '$WORK/leaf.pem' -noout -checkend $((7 * 86400 - 600)) && ! openssl x509 -in '$WORK/leaf.pem' -noout -checkend $((7 * 86400 + 600))"
check "logged: assigned regid=dev-csr-1" log_has "assigned regid=dev-csr-1 "

# --json shows the chain in the registrationState (base64 DER array).
"$PROVD_DEVICE" register --url "https://localhost:$PORT" --ca "$DATA_DIR/tls/ca.pem" \
  --scope "$SCOPE" --registration-id dev-csr-1 --symmetric-key "$K" \
  --csr-key "$WORK/dev.key" --cert-out "$WORK/dev2.pem" --json \
  > "$WORK/device.json" 2>/dev/null && rc=0 || rc=$?
expect_eq "a second registration with the same key exits 0" 0 "$rc"
first=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["issuedCertificateChain"][0])' "$WORK/device.json")
check "issuedCertificateChain[0] is the base64 DER leaf" bash -c \
  "base64 -d <<<'$first' | openssl x509 -inform DER -noout -subject | grep -q dev-csr-1"

# The status lookup never carries the chain (DPS), and refuses a csr.
http POST "/$SCOPE/registrations/dev-csr-1?api-version=2025-07-01-preview" \
  '{"registrationId":"dev-csr-1"}' -H "Authorization: $(device_token "$K" dev-csr-1)"
expect_eq "status lookup answers 200" 200 "$STATUS"
expect_eq "status lookup has no issuedCertificateChain" "" "$(json_get "$BODY_OUT" issuedCertificateChain)"
http POST "/$SCOPE/registrations/dev-csr-1?api-version=2025-07-01-preview" \
  "{\"registrationId\":\"dev-csr-1\",\"csr\":\"$first\"}" -H "Authorization: $(device_token "$K" dev-csr-1)"
expect_eq "a csr sent to the status lookup is 400" 400 "$STATUS"

# --- bad CSRs from an authenticated device: 400, reason logged, nothing stored ---
before=$(registration_etag dev-csr-1)
check "dev-csr-1 has a registration record" test "$before" != none
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$WORK/p384.key" 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/rsa.key" 2>/dev/null
bad_csr() { # DESCRIPTION CSR_B64 REASON
  register_csr dev-csr-1 "$K" "$2"
  expect_eq "$1: 400" 400 "$STATUS"
  expect_eq "$1: errorCode 400004" 400004 "$(json_get "$BODY_OUT" errorCode)"
  check "$1: logged reason $3" log_has "regid=dev-csr-1 reason=$3"
}
bad_csr "CSR for another CN" "$(csr_of "$WORK/p384.key" someone-else)" CSR_CN_MISMATCH
bad_csr "RSA CSR where P-384 is required" "$(csr_of "$WORK/rsa.key" dev-csr-1)" CSR_KEY_UNSUPPORTED
bad_csr "garbage CSR" "bm90IGEgY3Ny" CSR_MALFORMED
bad_csr "PEM instead of base64 DER" "-----BEGIN CERTIFICATE REQUEST-----" CSR_MALFORMED
expect_eq "refused CSRs left the registration alone" "$before" "$(registration_etag dev-csr-1)"

# --- a CSR proves nothing: authentication comes first ---
register_csr dev-csr-1 "$(random_key)" "$(csr_of "$WORK/p384.key" dev-csr-1)"
expect_eq "a CSR with a wrong key is 401" 401 "$STATUS"

# --- enrollments without (a known) issuer ---
K2=$(random_key)
provctl enrollment add dev-plain --primary-key "$K2" --secondary-key "$(random_key)" >/dev/null
register_csr dev-plain "$K2" "$(csr_of "$WORK/p384.key" dev-plain)"
expect_eq "no credentialPolicyName: 400" 400 "$STATUS"
expect_eq "no credentialPolicyName: errorCode 400000" 400000 "$(json_get "$BODY_OUT" errorCode)"
check "logged reason CSR_NOT_CONFIGURED" log_has "regid=dev-plain reason=CSR_NOT_CONFIGURED"
expect_eq "nothing stored for dev-plain" none "$(registration_etag dev-plain)"
K3=$(random_key)
provctl enrollment add dev-other --primary-key "$K3" --secondary-key "$(random_key)" \
  --credential-policy no-such-ca >/dev/null
register_csr dev-other "$K3" "$(csr_of "$WORK/p384.key" dev-other)"
expect_eq "an unknown credentialPolicyName: 400" 400 "$STATUS"
check "logged: names no certificate issuer" log_has "regid=dev-other reason=CSR_NOT_CONFIGURED.*names no certificate issuer"

# --- a disabled enrollment issues nothing ---
K4=$(random_key)
provctl enrollment add dev-off --primary-key "$K4" --secondary-key "$(random_key)" \
  --credential-policy fleet-ca --disabled >/dev/null
register_csr dev-off "$K4" "$(csr_of "$WORK/p384.key" dev-off)"
expect_eq "disabled enrollment: register answers 202" 202 "$STATUS"
opid=$(json_get "$BODY_OUT" operationId)
http GET "/$SCOPE/registrations/dev-off/operations/$opid?api-version=2025-07-01-preview" '' \
  -H "Authorization: $(device_token "$K4" dev-off)"
expect_eq "disabled enrollment: status disabled" disabled "$(json_get "$BODY_OUT" status)"
expect_eq "disabled enrollment: no certificate" "" "$(json_get "$BODY_OUT" registrationState.issuedCertificateChain)"

# --- group enrollments issue too ---
GK=$(random_key)
provctl group add fleet --primary-key "$GK" --secondary-key "$(random_key)" \
  --credential-policy fleet-ca >/dev/null
DK=$(derive_key "$GK" member-7)
register_csr member-7 "$DK" "$(csr_of "$WORK/p384.key" member-7)"
expect_eq "group member: register answers 202" 202 "$STATUS"
opid=$(json_get "$BODY_OUT" operationId)
http GET "/$SCOPE/registrations/member-7/operations/$opid?api-version=2025-07-01-preview" '' \
  -H "Authorization: $(device_token "$DK" member-7)"
expect_eq "group member: assigned" assigned "$(json_get "$BODY_OUT" status)"
printf %s "$BODY_OUT" | python3 -c '
import json, sys, base64, subprocess
chain = json.load(sys.stdin)["registrationState"]["issuedCertificateChain"]
pem = b"".join(subprocess.run(["openssl", "x509", "-inform", "DER"], input=base64.b64decode(c),
               capture_output=True, check=True).stdout for c in chain)
open(sys.argv[1], "wb").write(pem)' "$WORK/member.pem"
openssl x509 -in "$WORK/member.pem" -out "$WORK/member-leaf.pem"
check "group member: openssl verify accepts the chain" \
  openssl verify -CAfile "$PKI/root.pem" -untrusted "$WORK/member.pem" "$WORK/member-leaf.pem"

http GET /metrics ''
check "metrics count the issued certificates (3)" \
  grep -q '^provd_certificates_issued_total 3$' <<<"$BODY_OUT"
# Signing takes milliseconds: registrations with a CSR never run on the
# store writer, which the plain ones (non-blocking plugins) do.
check "no CSR registration ran on the store writer" \
  bash -c "! grep -q '^provd_store_reads_on_writer_total [1-9]' <<<'$BODY_OUT'"
"$PROVD_DEVICE" register --url "https://localhost:$PORT" --ca "$DATA_DIR/tls/ca.pem" \
  --scope "$SCOPE" --registration-id dev-plain --symmetric-key "$K2" >/dev/null 2>&1 && rc=0 || rc=$?
expect_eq "a registration without CSR still works for dev-plain" 0 "$rc"
http GET /metrics ''
check "...and it ran on the store writer" \
  grep -q '^provd_store_reads_on_writer_total [1-9]' <<<"$BODY_OUT"

# --- re-provisioning with the issued certificate: needs the x509 plugin ---
# (built by the X.509 part of the same issue; this step runs once it exists)
if [ -f "$PLUGIN_DIR/x509.so" ]; then
  if ! grep -q 'name: x509' "$WORK/provd.yaml"; then
    stop_provd
    sed -i 's/^  - { kind: allocation, name: hashed }$/  - { kind: attestation, name: x509 }\n&/' "$WORK/provd.yaml"
    start_provd "$WORK/provd.yaml"
  fi
  # member-7 has no individual enrollment: an X.509 group on the root
  # (the most specific match for its chain) takes it.
  out=$(provctl group add fleet-x509 --attestation x509 --ca-cert "$PKI/root.pem" 2>&1) && rc=0 || rc=$?
  expect_eq "an X.509 group on the issuing CA's root" 0 "$rc"
  [ "$rc" = 0 ] || echo "$out" >&2
  x509_path() { echo "/$SCOPE/registrations/member-7/$1?api-version=2021-06-01"; }
  http PUT "$(x509_path register)" '{"registrationId":"member-7"}' \
    --cert "$WORK/member.pem" --key "$WORK/p384.key"
  expect_eq "the issued chain attests the device: register answers 202" 202 "$STATUS"
  opid=$(json_get "$BODY_OUT" operationId)
  http GET "$(x509_path "operations/$opid")" '' --cert "$WORK/member.pem" --key "$WORK/p384.key"
  expect_eq "the issued chain attests the device: assigned" assigned "$(json_get "$BODY_OUT" status)"
  expect_eq "through the X.509 group" fleet-x509 \
    "$(json_get "$BODY_OUT" registrationState.x509.enrollmentGroupId)"
else
  echo "# skipped: registering again with the issued certificate (no x509 plugin in $PLUGIN_DIR)"
fi

finish
