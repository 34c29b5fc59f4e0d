#!/bin/sh
# An example job script: Kairoi runs it as `sh scripts/example.sh <job id>`.
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) running job $1"
