#!/bin/sh
# Container entrypoint: runs `bamboo $BAMBOO_ROLE` (the image's role, api or worker) with any extra
# arguments, or `bamboo ARGS...` when the first argument is a subcommand (api, worker, render, demo)
# or a flag like --help. Configuration comes from Bamboo's env vars (docs/configuration.md), plus
# CONFIG_PATH for an optional JSON file and BIND for the HTTP listen address.
set -e

# Workers reach an api's ZeroMQ socket by the host name it registers in ZooKeeper. Under Mesos
# (MESOS_TASK_ID set), or with Bamboo's BAMBOO_DOCKER_AUTO_HOST (which makes the config use $HOST for
# Bamboo.Endpoint), that is $HOST, the agent's name, unless BAMBOO_ZMQ_ADVERTISE_HOST says otherwise.
if [ -n "${HOST:-}" ] && [ -z "${BAMBOO_ZMQ_ADVERTISE_HOST:-}" ] \
   && { [ -n "${BAMBOO_DOCKER_AUTO_HOST:-}" ] || [ -n "${MESOS_TASK_ID:-}" ]; }; then
  export BAMBOO_ZMQ_ADVERTISE_HOST="$HOST"
fi

case "${1:-}" in
  api|worker|render|demo|help|-h|--help|-V|--version) exec bamboo "$@" ;;
esac
exec bamboo "${BAMBOO_ROLE:-api}" "$@"
