#!/bin/sh
# The refunds namespace and the search attributes of the CONTRACT's "Temporal surface"
# (and incidents': IncidentId on an incident and its refunds, IncidentState).
# Keep the list equal to temporal-dev.yml's (tests/operating/test_deploy_files.py checks).
set -eu
: "${NAMESPACE:=refunds}" "${RETENTION:=30d}"
until temporal operator cluster health >/dev/null 2>&1; do sleep 2; done
temporal operator namespace describe --namespace "$NAMESPACE" >/dev/null 2>&1 \
  || temporal operator namespace create --namespace "$NAMESPACE" --retention "$RETENTION"
for attribute in \
  RefundStatus=Keyword \
  OrderId=Keyword \
  MerchantId=Keyword \
  BuyerId=Keyword \
  RefundAmount=Int \
  RiskLevel=Keyword \
  ReviewDeadline=Datetime \
  IncidentId=Keyword \
  IncidentState=Keyword
do
  name="${attribute%%=*}"
  type="${attribute#*=}"
  temporal operator search-attribute create --namespace "$NAMESPACE" --name "$name" --type "$type" \
    >/dev/null 2>&1 || true   # registered already
done
temporal operator search-attribute list --namespace "$NAMESPACE"
echo "namespace $NAMESPACE is ready"
