#!/bin/sh
# Before the first `docker compose up`: random secrets for this host, never overwritten.
#
#   secrets/bot_password         the bot account's password (create-accounts.sh uses it)
#   secrets/store_key            encrypts the bot's crypto store
#   secrets/synapse_admin_token  empty until create-accounts.sh fills it
#   .env                         from .env.example, with a random POSTGRES_PASSWORD
#
# The folder is yours only (0700); the files in it are readable (0644) so that the bot's
# non-root user in the container can read them through the bind mount, while nobody
# else on this host can reach them.
set -eu
cd "$(dirname "$0")"
umask 077

random() { head -c 32 /dev/urandom | base64 | tr -d '/+=\n'; }

mkdir -p secrets
chmod 0700 secrets
for name in bot_password store_key; do
    if [ ! -s "secrets/$name" ]; then
        random > "secrets/$name"
        echo "created secrets/$name"
    fi
done
[ -e secrets/synapse_admin_token ] || : > secrets/synapse_admin_token
chmod 0644 secrets/bot_password secrets/store_key secrets/synapse_admin_token

if [ ! -e .env ]; then
    sed "s/^POSTGRES_PASSWORD=.*/POSTGRES_PASSWORD=$(random)/" .env.example > .env
    chmod 0600 .env
    echo "created .env: now set HELPLINE_SERVER_NAME, the domains and ACME_EMAIL in it"
fi
