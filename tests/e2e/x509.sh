#!/usr/bin/env bash
# ctest-labels: e2e
# X.509 registration end to end over mutual TLS: certificates made here
# with the openssl CLI, enrollments made with provctl, devices registered
# with provd-device and curl; the most specific enrollment wins, refusals
# carry DPS's 401002 "Invalid certificate." and a logged reason, bad
# certificates are refused by the service API with nothing stored.
source "$(dirname "$0")/lib/common.bash"

DATA_DIR=$WORK/data
write_config "$WORK/provd.yaml" "$DATA_DIR"
echo 'limits: { max_body: 2MiB }' >> "$WORK/provd.yaml"
start_provd "$WORK/provd.yaml"

PKI=$WORK/pki
mkdir -p "$PKI"
ossl() { openssl "$@" 2>/dev/null; }
# new_key NAME
new_key() { ossl ecparam -name prime256v1 -genkey -noout -out "$PKI/$1.key"; }
# make_ca NAME CN [ISSUER]: self-signed root, or an intermediate of ISSUER
make_ca() {
  new_key "$1"
  if [ -z "${3:-}" ]; then
    ossl req -x509 -new -key "$PKI/$1.key" -subj "/CN=$2" -days 30 -out "$PKI/$1.pem" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
  else
    ossl req -new -key "$PKI/$1.key" -subj "/CN=$2" -out "$PKI/$1.csr"
    printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n' > "$PKI/$1.ext"
    ossl x509 -req -in "$PKI/$1.csr" -CA "$PKI/$3.pem" -CAkey "$PKI/$3.key" -CAcreateserial \
      -days 30 -extfile "$PKI/$1.ext" -out "$PKI/$1.pem"
  fi
}
# make_device NAME CN [ISSUER]: a device certificate (self-signed without ISSUER)
make_device() {
  new_key "$1"
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' > "$PKI/$1.ext"
  if [ -z "${3:-}" ]; then
    ossl req -x509 -new -key "$PKI/$1.key" -subj "/CN=$2" -days 30 -out "$PKI/$1.pem" \
      -addext basicConstraints=critical,CA:FALSE -addext extendedKeyUsage=clientAuth
  else
    ossl req -new -key "$PKI/$1.key" -subj "/CN=$2" -out "$PKI/$1.csr"
    ossl x509 -req -in "$PKI/$1.csr" -CA "$PKI/$3.pem" -CAkey "$PKI/$3.key" -CAcreateserial \
      -days 30 -extfile "$PKI/$1.ext" -out "$PKI/$1.pem"
  fi
}

make_ca root "Fleet Root"
make_ca inter "Fleet Intermediate" root
make_ca other "Other Root"
make_device solo x509-solo
make_device fleet1 fleet-001 inter
make_device fleet2 fleet-002 inter
make_device blocked fleet-003 inter
make_device stranger fleet-004 other
make_device liar someone-else inter
cat "$PKI/fleet1.pem" "$PKI/inter.pem" > "$PKI/fleet1-chain.pem"

reg_path() { echo "/$SCOPE/registrations/$1/register?api-version=2021-06-01"; }
# register_curl REGID CERT KEY: raw mTLS register call (sets STATUS, BODY_OUT)
register_curl() {
  http PUT "$(reg_path "$1")" "{\"registrationId\":\"$1\"}" --cert "$2" --key "$3"
}
log_has() { grep -q "$1" "$WORK/provd.log"; }
device() { "$PROVD_DEVICE" register --url "https://localhost:$PORT" --scope "$SCOPE" \
           --ca "$DATA_DIR/tls/ca.pem" "$@"; }

# --- enrollment: an individual self-signed device, a group on the root ---
out=$(provctl enrollment add x509-solo --attestation x509 --cert "$PKI/solo.pem" 2>&1) && rc=0 || rc=$?
expect_eq "provctl enrollment add --attestation x509 exits 0 ($out)" 0 "$rc"
out=$(provctl group add fleet-all --attestation x509 --ca-cert "$PKI/root.pem" 2>&1) && rc=0 || rc=$?
expect_eq "provctl group add --attestation x509 --ca-cert exits 0 ($out)" 0 "$rc"
shown=$(provctl enrollment show x509-solo --json)
expect_eq "the enrollment shows the certificate's info" "CN=x509-solo" \
  "$(json_get "$shown" attestation.x509.clientCertificates.primary.info.subjectName)"

# --- an individual device ---
out=$(device --registration-id x509-solo --cert "$PKI/solo.pem" --key "$PKI/solo.key" 2>&1) && rc=0 || rc=$?
expect_eq "provd-device registers the individual X.509 device ($out)" 0 "$rc"
check "it is assigned" grep -q "hub-" <<<"$out"
state=$(provctl registration show x509-solo --json)
thumb=$(ossl x509 -in "$PKI/solo.pem" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g')
expect_eq "registrationState.x509 carries the leaf's SHA-256 thumbprint" "$thumb" \
  "$(json_get "$state" x509.certificateInfo.sha256Thumbprint)"

# --- a group device sends leaf + intermediate; the root is enrolled ---
out=$(device --registration-id fleet-001 --cert "$PKI/fleet1-chain.pem" --key "$PKI/fleet1.key" 2>&1) && rc=0 || rc=$?
expect_eq "a group device presenting leaf + intermediate registers ($out)" 0 "$rc"
state=$(provctl registration show fleet-001 --json)
expect_eq "registrationState.x509 names the group" fleet-all \
  "$(json_get "$state" x509.enrollmentGroupId)"
expect_eq "and the signing certificate" "CN=Fleet Root" \
  "$(json_get "$state" x509.signingCertificateInfo.subjectName)"

# --- without the intermediate the root group cannot be reached ---
register_curl fleet-002 "$PKI/fleet2.pem" "$PKI/fleet2.key"
expect_eq "leaf only, root enrolled: 401" 401 "$STATUS"
expect_eq "errorCode 401002" 401002 "$(json_get "$BODY_OUT" errorCode)"
expect_eq "DPS's message" "Invalid certificate." "$(json_get "$BODY_OUT" message)"
check "the log names fleet-002 and CERT_UNTRUSTED" log_has "regid=fleet-002 reason=CERT_UNTRUSTED"

# --- the most specific group wins: a group on the intermediate ---
out=$(provctl group add fleet-line2 --attestation x509 --ca-cert "$PKI/inter.pem" --hub hub-2 2>&1) && rc=0 || rc=$?
expect_eq "a group on the intermediate is added ($out)" 0 "$rc"
register_curl fleet-002 "$PKI/fleet2.pem" "$PKI/fleet2.key"
expect_eq "leaf only, intermediate enrolled: 202" 202 "$STATUS"
out=$(device --registration-id fleet-001 --cert "$PKI/fleet1-chain.pem" --key "$PKI/fleet1.key" 2>&1) && rc=0 || rc=$?
state=$(provctl registration show fleet-001 --json)
expect_eq "with both groups the intermediate's group wins" fleet-line2 \
  "$(json_get "$state" x509.enrollmentGroupId)"

# --- refusals ---
register_curl fleet-999 "$PKI/liar.pem" "$PKI/liar.key"
expect_eq "another registration id than the CN: 401" 401 "$STATUS"
check "logged as CERT_CN_MISMATCH" log_has "regid=fleet-999 reason=CERT_CN_MISMATCH"
# the liar's certificate says someone-else; it asks to be fleet-001
http PUT "$(reg_path fleet-001)" '{"registrationId":"fleet-001"}' --cert "$PKI/liar.pem" --key "$PKI/liar.key"
expect_eq "a CN that is not the requested id: 401002" 401002 "$(json_get "$BODY_OUT" errorCode)"
register_curl fleet-004 "$PKI/stranger.pem" "$PKI/stranger.key"
expect_eq "a certificate of another CA: 401" 401 "$STATUS"
http PUT "$(reg_path fleet-001)" '{"registrationId":"fleet-001"}'
expect_eq "no certificate and no token: 401" 401 "$STATUS"

# --- a disabled individual enrollment blocks one device of the group ---
make_device other3 fleet-003
out=$(provctl enrollment add fleet-003 --attestation x509 --cert "$PKI/other3.pem" --disabled 2>&1) && rc=0 || rc=$?
expect_eq "a disabled individual enrollment for fleet-003 ($out)" 0 "$rc"
register_curl fleet-003 "$PKI/blocked.pem" "$PKI/blocked.key"
expect_eq "fleet-003 is refused although its group is enabled" 401 "$STATUS"
check "logged as ENROLLMENT_DISABLED" log_has "regid=fleet-003 reason=ENROLLMENT_DISABLED"

provctl enrollment disable x509-solo >/dev/null
out=$(device --registration-id x509-solo --cert "$PKI/solo.pem" --key "$PKI/solo.key" 2>&1) && rc=0 || rc=$?
check "a disabled individual enrollment answers status disabled ($out)" grep -q "disabled" <<<"$out"
provctl enrollment enable x509-solo >/dev/null

# --- a CRL on the group revokes one device, replaced without restart ---
serial=$(ossl x509 -in "$PKI/fleet2.pem" -noout -serial | sed 's/serial=//')
: > "$PKI/index.txt"
printf 'V\t300101000000Z\t\t%s\tunknown\t/CN=fleet-002\n' "$serial" > "$PKI/index.txt"
cat > "$PKI/ca.cnf" <<EOF
[ ca ]
default_ca = inter
[ inter ]
database = $PKI/index.txt
certificate = $PKI/inter.pem
private_key = $PKI/inter.key
default_md = sha256
default_crl_days = 7
EOF
ossl ca -config "$PKI/ca.cnf" -gencrl -out "$PKI/empty.crl"
ossl ca -config "$PKI/ca.cnf" -revoke "$PKI/fleet2.pem"
ossl ca -config "$PKI/ca.cnf" -gencrl -out "$PKI/revoked.crl"
out=$(provctl group add fleet-line2 --attestation x509 --ca-cert "$PKI/inter.pem" --crl "$PKI/revoked.crl" --hub hub-2 --force 2>&1) && rc=0 || rc=$?
expect_eq "the group gets a CRL ($out)" 0 "$rc"
register_curl fleet-002 "$PKI/fleet2.pem" "$PKI/fleet2.key"
expect_eq "a revoked device is refused" 401 "$STATUS"
check "logged as CERT_REVOKED" log_has "regid=fleet-002 reason=CERT_REVOKED"
provctl group add fleet-line2 --attestation x509 --ca-cert "$PKI/inter.pem" --crl "$PKI/empty.crl" --hub hub-2 --force >/dev/null 2>&1
register_curl fleet-002 "$PKI/fleet2.pem" "$PKI/fleet2.key"
expect_eq "a CRL without it lets it in again, no restart" 202 "$STATUS"

# --- a registered CA with proof of possession (caReferences) ---
make_ca line3 "Line 3 Intermediate" root
make_device fleet5 fleet-005 line3
cat "$PKI/fleet5.pem" "$PKI/line3.pem" > "$PKI/fleet5-chain.pem"
out=$(provctl ca add line3-ca --cert "$PKI/line3.pem" 2>&1) && rc=0 || rc=$?
expect_eq "provctl ca add registers the CA ($out)" 0 "$rc"
check "unverified at first" grep -q "verified: *no" <<<"$out"
out=$(provctl group add line3 --attestation x509 --ca-ref line3-ca 2>&1) && rc=0 || rc=$?
check "a group may not name an unverified CA" test "$rc" -ne 0
check "and says so" grep -q "not verified" <<<"$out"
TOKEN=$(service_token)
http POST "/enrollmentGroups?api-version=2021-10-01" \
  '{"mode":"create","enrollmentGroups":[{"enrollmentGroupId":"line3-bulk","attestation":{"type":"x509","x509":{"caReferences":{"primary":"line3-ca"}}}}]}' \
  -H "Authorization: $TOKEN"
expect_eq "nor through a bulk operation" "False 400004" \
  "$(json_get "$BODY_OUT" isSuccessful) $(printf %s "$BODY_OUT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["errors"][0]["errorCode"])')"
code=$(provctl ca verify line3-ca 2>"$WORK/verify.err") || { cat "$WORK/verify.err"; code=; }
check "ca verify prints a verification code" grep -Eq '^[0-9A-F]{32}$' <<<"$code"
new_key proof
ossl req -new -key "$PKI/proof.key" -subj "/CN=$code" -out "$PKI/proof.csr"
ossl x509 -req -in "$PKI/proof.csr" -CA "$PKI/other.pem" -CAkey "$PKI/other.key" -CAcreateserial -days 1 -out "$PKI/bad-proof.pem"
out=$(provctl ca verify line3-ca --proof "$PKI/bad-proof.pem" 2>&1) && rc=0 || rc=$?
check "a proof signed by another key is refused" test "$rc" -ne 0
ossl req -new -key "$PKI/proof.key" -subj "/CN=not-the-code" -out "$PKI/wrong-cn.csr"
ossl x509 -req -in "$PKI/wrong-cn.csr" -CA "$PKI/line3.pem" -CAkey "$PKI/line3.key" -CAcreateserial -days 1 -out "$PKI/wrong-cn.pem"
out=$(provctl ca verify line3-ca --proof "$PKI/wrong-cn.pem" 2>&1) && rc=0 || rc=$?
check "a proof whose CN is not the code is refused" test "$rc" -ne 0
check "and names the code" grep -q "must be the verification code" <<<"$out"
ossl x509 -req -in "$PKI/proof.csr" -CA "$PKI/line3.pem" -CAkey "$PKI/line3.key" -CAcreateserial -days 1 -out "$PKI/proof.pem"
out=$(provctl ca verify line3-ca --proof "$PKI/proof.pem" 2>&1) && rc=0 || rc=$?
expect_eq "the proof signed with the CA's key is accepted ($out)" 0 "$rc"
check "the CA is verified" grep -q "verified: *yes" <<<"$out"
out=$(provctl group add line3 --attestation x509 --ca-ref line3-ca 2>&1) && rc=0 || rc=$?
expect_eq "now the group may name it ($out)" 0 "$rc"
out=$(device --registration-id fleet-005 --cert "$PKI/fleet5-chain.pem" --key "$PKI/fleet5.key" 2>&1) && rc=0 || rc=$?
expect_eq "a device of the registered CA registers ($out)" 0 "$rc"
state=$(provctl registration show fleet-005 --json)
expect_eq "through the group naming the CA (more specific than the root's)" line3 \
  "$(json_get "$state" x509.enrollmentGroupId)"
# the CA's CRL revokes it; replacing the CA keeps it verified
serial=$(ossl x509 -in "$PKI/fleet5.pem" -noout -serial | sed 's/serial=//')
printf 'R\t300101000000Z\t250101000000Z\t%s\tunknown\t/CN=fleet-005\n' "$serial" > "$PKI/index3.txt"
sed -e "s|$PKI/index.txt|$PKI/index3.txt|" -e "s|$PKI/inter.pem|$PKI/line3.pem|" \
    -e "s|$PKI/inter.key|$PKI/line3.key|" "$PKI/ca.cnf" > "$PKI/ca3.cnf"
ossl ca -config "$PKI/ca3.cnf" -gencrl -out "$PKI/line3.crl"
out=$(provctl ca add line3-ca --cert "$PKI/line3.pem" --crl "$PKI/line3.crl" --force 2>&1) && rc=0 || rc=$?
check "the CA gets a CRL and stays verified ($out)" grep -q "verified: *yes" <<<"$out"
http PUT "$(reg_path fleet-005)" '{"registrationId":"fleet-005"}' --cert "$PKI/fleet5-chain.pem" --key "$PKI/fleet5.key"
expect_eq "the registered CA's CRL refuses the device" 401 "$STATUS"
check "logged as CERT_REVOKED" log_has "regid=fleet-005 reason=CERT_REVOKED"

# --- bad certificates through the service API: 400, nothing stored ---
TOKEN=$(service_token)
put_enrollment() { # ID CERT_FILE
  python3 - "$1" "$2" > "$WORK/body.json" <<'PY'
import json, sys
cert = open(sys.argv[2]).read()
print(json.dumps({"registrationId": sys.argv[1], "attestation": {"type": "x509",
  "x509": {"clientCertificates": {"primary": {"certificate": cert}}}}}))
PY
  http PUT "/enrollments/$1?api-version=2021-10-01" "@$WORK/body.json" -H "Authorization: $TOKEN"
}
echo "this is not a certificate" > "$PKI/garbage.txt"
put_enrollment bad-1 "$PKI/garbage.txt"
expect_eq "garbage: 400" 400 "$STATUS"
check "with a message" grep -q "neither PEM nor base64 DER" <<<"$BODY_OUT"
put_enrollment bad-2 "$PKI/solo.key"
expect_eq "a private key instead of a certificate: 400" 400 "$STATUS"
check "the message says so" grep -q "private key" <<<"$BODY_OUT"
(cat "$PKI/solo.pem"; head -c 1000000 /dev/zero | tr '\0' 'A') > "$PKI/big.pem"
put_enrollment bad-3 "$PKI/big.pem"
expect_eq "a 1 MB PEM: 400" 400 "$STATUS"
check "the message names the limit" grep -q "longer than 64 KiB" <<<"$BODY_OUT"
for _ in $(seq 1 20); do cat "$PKI/inter.pem"; done > "$PKI/chain20.pem"
put_enrollment bad-4 "$PKI/chain20.pem"
expect_eq "a chain of 20 certificates: 400" 400 "$STATUS"
check "the message says one certificate" grep -q "exactly one" <<<"$BODY_OUT"
out=$(provctl group add not-a-ca --attestation x509 --ca-cert "$PKI/solo.pem" 2>&1) && rc=0 || rc=$?
check "a device certificate as a group's CA: refused" test "$rc" -ne 0
check "saying it is not a CA" grep -q "not a CA certificate" <<<"$out"
for id in bad-1 bad-2 bad-3 bad-4; do
  http GET "/enrollments/$id?api-version=2021-10-01" '' -H "Authorization: $TOKEN"
  expect_eq "$id was not stored" 404 "$STATUS"
done

finish
