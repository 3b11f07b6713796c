#!/bin/sh
# After `docker compose up -d postgres synapse`: the accounts the bot needs. Run once.
#
#   1. the bot's account, @alltidhjelp:$HELPLINE_SERVER_NAME, with secrets/bot_password
#   2. an admin account used only by the bot, for deleting finished conversations; its
#      access token goes to secrets/synapse_admin_token (its password is thrown away)
#   3. the bot's rate-limit override (Synapse's default rc_message, 0.2/s, would throttle
#      the relay): POST /_synapse/admin/v1/users/<bot>/override_ratelimit
#
# Everything runs inside the Synapse container against localhost:8008, so the admin API
# is used without ever being published. Secrets go through stdin, never command lines.
set -eu
cd "$(dirname "$0")"
# shellcheck disable=SC1091
. ./.env
: "${HELPLINE_SERVER_NAME:?set it in .env}"

BOT="@alltidhjelp:${HELPLINE_SERVER_NAME}"
ADMIN=helpline-purge
in_synapse() { docker compose exec -T synapse "$@"; }
random() { head -c 32 /dev/urandom | base64 | tr -d '/+=\n'; }

echo "1. the bot's account $BOT"
in_synapse register_new_matrix_user -c /config/homeserver.yaml --exists-ok \
    -u alltidhjelp --no-admin --password-file /dev/stdin http://localhost:8008 \
    < secrets/bot_password

echo "2. the purge admin @$ADMIN:${HELPLINE_SERVER_NAME} and its token"
admin_password="$(random)"
printf '%s' "$admin_password" | in_synapse register_new_matrix_user \
    -c /config/homeserver.yaml -u "$ADMIN" --admin --password-file /dev/stdin \
    http://localhost:8008
printf '{"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "%s"}, "password": "%s", "initial_device_display_name": "helpline-bot purge"}' \
        "$ADMIN" "$admin_password" \
    | in_synapse sh -c 'curl -fsS -X POST -H "Content-Type: application/json" --data-binary @- http://localhost:8008/_matrix/client/v3/login' \
    | in_synapse python -c 'import json, sys; print(json.load(sys.stdin)["access_token"])' \
    > secrets/synapse_admin_token
chmod 0644 secrets/synapse_admin_token

echo "3. the rate-limit override for $BOT"
user=$(printf '%s' "$BOT" | sed 's/@/%40/; s/:/%3A/')
printf 'Authorization: Bearer %s\n' "$(cat secrets/synapse_admin_token)" \
    | in_synapse curl -fsS -X POST -H @- -H "Content-Type: application/json" \
        --data '{"messages_per_second": 0, "burst_count": 0}' \
        "http://localhost:8008/_synapse/admin/v1/users/$user/override_ratelimit"
echo
echo "Done. Now: docker compose up -d bot"
