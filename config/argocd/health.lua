-- Argo CD health check of licenseha's LicenseTriad and LicenseBackupPair
-- (argocd-cm keys resource.customizations.health.licenseha.io_LicenseTriad and
-- resource.customizations.health.licenseha.io_LicenseBackupPair; see
-- docs/gitops.md). From the status the operator reports:
--   Progressing  no status yet, or status.observedGeneration behind
--                metadata.generation; phase Forming; phase Active while the
--                Ready condition is not True
--   Healthy      phase Active and Ready True
--   Degraded     phase Degraded (a member or side down, or nobody serves),
--                NoQuorum (triads) or Failed (then the Stalled condition
--                names what is in the way)
local hs = {status = "Progressing", message = "Waiting for the operator to report status"}
if obj.status == nil or obj.status.phase == nil or obj.status.phase == "" then
  return hs
end
local gen = obj.metadata.generation
local observed = obj.status.observedGeneration
if gen ~= nil and (observed == nil or observed < gen) then
  hs.message = "Waiting for the operator to observe generation " .. tostring(gen)
  return hs
end
local conditions = {}
if obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    conditions[c.type] = c
  end
end
local phase = obj.status.phase
local ready = conditions["Ready"]
-- The message: the phase, then the reason and message of the condition that
-- explains it (Stalled when failed, Degraded when degraded, else Ready).
local why = ready
if phase == "Failed" and conditions["Stalled"] ~= nil then
  why = conditions["Stalled"]
elseif phase == "Degraded" and conditions["Degraded"] ~= nil then
  why = conditions["Degraded"]
end
local detail = phase
if why ~= nil then
  if why.reason ~= nil and why.reason ~= "" then
    detail = detail .. " (" .. why.reason .. ")"
  end
  if why.message ~= nil and why.message ~= "" then
    detail = detail .. ": " .. why.message
  end
end
hs.message = detail
if phase == "Degraded" or phase == "NoQuorum" or phase == "Failed" then
  hs.status = "Degraded"
elseif phase == "Active" and ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
else
  hs.status = "Progressing"
end
return hs
