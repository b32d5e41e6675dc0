/**
 * Offline checks of synthesized manifests (used by the unit tests):
 * - KEDA objects against the openAPIV3Schema of the CRDs in cdk8s/crds, made
 *   strict: where the schema lists properties without saying what else is
 *   allowed, unknown fields are rejected (the API server would prune them
 *   silently, which hides typos such as `cooldownPerid`);
 * - core objects against the parts of the Kubernetes API schema that matter
 *   here: apiVersion/kind, required fields, names, selectors that match their
 *   pod templates, and references between objects.
 */
import fs from 'node:fs';
import path from 'node:path';
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import { parse } from 'yaml';

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

export const CRD_DIR = path.join(__dirname, 'crds');

/** Add additionalProperties: false wherever a schema has properties and no rule for others. */
export function strictSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(strictSchema);
  if (!isObj(schema)) return schema;
  const out: Json = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === 'properties' && isObj(v)) {
      out[k] = Object.fromEntries(Object.entries(v).map(([name, sub]) => [name, strictSchema(sub)]));
    } else if (k === 'x-kubernetes-validations') {
      out[k] = v; // CEL rules: checked by hand (see celRules)
    } else {
      out[k] = strictSchema(v);
    }
  }
  if (
    isObj(out.properties) &&
    out.additionalProperties === undefined &&
    out['x-kubernetes-preserve-unknown-fields'] !== true
  ) {
    out.additionalProperties = false;
  }
  return out;
}

export interface CrdValidator {
  readonly kinds: readonly string[];
  /** Problems of one object, empty when valid. */
  validate(obj: unknown): string[];
}

function formatErrors(errors: readonly ErrorObject[] | null | undefined): string[] {
  return (errors ?? []).map((e) => {
    const extra =
      e.keyword === 'additionalProperties'
        ? ` (unknown field "${(e.params as { additionalProperty: string }).additionalProperty}")`
        : '';
    return `${e.instancePath || '/'} ${e.message ?? e.keyword}${extra}`;
  });
}

/** A validator for every CRD version in cdk8s/crds, keyed by apiVersion + kind. */
export function loadCrdValidator(dir: string = CRD_DIR): CrdValidator {
  const ajv = new Ajv({ allErrors: true, strict: false });
  ajv.addFormat('int32', {
    type: 'number',
    validate: (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31,
  });
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isSafeInteger(n) });
  ajv.addFormat('date-time', { type: 'string', validate: (s: string) => !Number.isNaN(Date.parse(s)) });
  const byKey = new Map<string, { fn: ValidateFunction; rules: { rule: string; message: string }[] }>();
  for (const file of fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()) {
    const crd = parse(fs.readFileSync(path.join(dir, file), 'utf8')) as Json;
    const spec = crd.spec as Json;
    const group = spec.group as string;
    const kind = (spec.names as Json).kind as string;
    for (const v of spec.versions as Json[]) {
      const schema = (v.schema as Json).openAPIV3Schema as Json;
      const rules = (
        (((schema.properties as Json).spec as Json)['x-kubernetes-validations'] as Json[] | undefined) ?? []
      ).map((r) => ({
        rule: r.rule as string,
        message: r.message as string,
      }));
      byKey.set(`${group}/${v.name as string} ${kind}`, {
        fn: ajv.compile(strictSchema(schema) as object),
        rules,
      });
    }
  }
  return {
    kinds: [...byKey.keys()].sort(),
    validate(obj: unknown): string[] {
      if (!isObj(obj)) return ['not an object'];
      const entry = byKey.get(`${String(obj.apiVersion)} ${String(obj.kind)}`);
      if (!entry) return [`no CRD in ${dir} for ${String(obj.apiVersion)} ${String(obj.kind)}`];
      const problems = entry.fn(obj) ? [] : formatErrors(entry.fn.errors);
      problems.push(...metadataProblems(obj));
      for (const r of entry.rules) {
        const p = celRule(r.rule, obj.spec);
        if (p === false) problems.push(`/spec ${r.message}`);
      }
      return problems;
    },
  };
}

/**
 * The CEL rules of the KEDA CRDs we can evaluate offline. An unknown rule is a
 * failure, so that a CRD upgrade that adds one is noticed.
 */
function celRule(rule: string, spec: unknown): boolean {
  const s = isObj(spec) ? spec : {};
  if (rule.includes('self.minReplicaCount <= (has(self.maxReplicaCount) ? self.maxReplicaCount : 100)')) {
    return (
      s.minReplicaCount === undefined ||
      (s.minReplicaCount as number) <= ((s.maxReplicaCount as number | undefined) ?? 100)
    );
  }
  throw new Error(`unmodelled CRD validation rule: ${rule}`);
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

function metadataProblems(obj: Json): string[] {
  const p: string[] = [];
  const md = obj.metadata;
  if (!isObj(md)) return ['/metadata is required'];
  if (typeof md.name !== 'string' || md.name.length > 253 || !DNS_SUBDOMAIN.test(md.name))
    p.push(`/metadata/name ${JSON.stringify(md.name)} is not a DNS-1123 subdomain`);
  if (md.namespace !== undefined && (typeof md.namespace !== 'string' || !DNS_LABEL.test(md.namespace)))
    p.push('/metadata/namespace is not a DNS label');
  for (const [k, v] of Object.entries(isObj(md.labels) ? md.labels : {})) {
    if (typeof v !== 'string' || v.length > 63 || !LABEL_VALUE.test(v))
      p.push(`/metadata/labels/${k} has an invalid value ${JSON.stringify(v)}`);
  }
  return p;
}

/** apiVersion of every core kind we emit (the Kubernetes 1.27+ GA versions). */
export const CORE_KINDS: Readonly<Record<string, string>> = {
  Namespace: 'v1',
  ServiceAccount: 'v1',
  ConfigMap: 'v1',
  Secret: 'v1',
  Service: 'v1',
  Deployment: 'apps/v1',
  StatefulSet: 'apps/v1',
  Job: 'batch/v1',
  HorizontalPodAutoscaler: 'autoscaling/v2',
  PodDisruptionBudget: 'policy/v1',
  NetworkPolicy: 'networking.k8s.io/v1',
};

const NAMESPACED = new Set(Object.keys(CORE_KINDS).filter((k) => k !== 'Namespace'));

function get(obj: unknown, p: string): unknown {
  let cur: unknown = obj;
  for (const k of p.split('.')) cur = isObj(cur) ? cur[k] : undefined;
  return cur;
}

/** Fields the Kubernetes API requires, per kind (paths relative to the object). */
const REQUIRED: Readonly<Record<string, readonly string[]>> = {
  Deployment: ['spec.selector', 'spec.template.spec.containers'],
  StatefulSet: ['spec.selector', 'spec.template.spec.containers', 'spec.serviceName'],
  Job: ['spec.template.spec.containers', 'spec.template.spec.restartPolicy'],
  Service: ['spec.ports'],
  HorizontalPodAutoscaler: ['spec.scaleTargetRef.kind', 'spec.scaleTargetRef.name', 'spec.maxReplicas'],
  PodDisruptionBudget: ['spec.selector'],
  NetworkPolicy: ['spec.podSelector'],
};

function podProblems(where: string, pod: unknown): string[] {
  const p: string[] = [];
  const containers = get(pod, 'containers');
  if (!Array.isArray(containers) || containers.length === 0)
    return [`${where}.containers needs at least one container`];
  const names = new Set<string>();
  for (const [i, c] of containers.entries()) {
    const at = `${where}.containers[${i}]`;
    if (!isObj(c)) {
      p.push(`${at} is not an object`);
      continue;
    }
    if (typeof c.name !== 'string' || !DNS_LABEL.test(c.name)) p.push(`${at}.name must be a DNS label`);
    if (names.has(c.name as string)) p.push(`${at}.name ${String(c.name)} is not unique`);
    names.add(c.name as string);
    if (typeof c.image !== 'string' || c.image === '') p.push(`${at}.image is required`);
    const portNames = new Set<string>();
    for (const port of (c.ports as Json[] | undefined) ?? []) {
      const n = port.containerPort as number;
      if (!Number.isInteger(n) || n < 1 || n > 65535) p.push(`${at}.ports containerPort ${n} out of range`);
      if (port.name) portNames.add(port.name as string);
    }
    for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
      const port = get(c, `${probe}.httpGet.port`) ?? get(c, `${probe}.tcpSocket.port`);
      if (typeof port === 'string' && !portNames.has(port))
        p.push(`${at}.${probe} refers to port "${port}", which the container does not name`);
    }
    for (const [j, e] of ((c.env as Json[] | undefined) ?? []).entries()) {
      if (typeof e.name !== 'string' || !/^[-._a-zA-Z][-._a-zA-Z0-9]*$/.test(e.name))
        p.push(`${at}.env[${j}].name is invalid`);
      if (e.value !== undefined && e.valueFrom !== undefined)
        p.push(`${at}.env[${j}] has both value and valueFrom`);
    }
    const mounts = new Set(((get(pod, 'volumes') as Json[] | undefined) ?? []).map((v) => v.name));
    for (const m of (c.volumeMounts as Json[] | undefined) ?? []) {
      if (!mounts.has(m.name) && m.name !== 'data') p.push(`${at} mounts unknown volume "${String(m.name)}"`);
    }
  }
  return p;
}

/** Problems of one core object on its own. */
export function coreObjectProblems(obj: unknown): string[] {
  if (!isObj(obj)) return ['not an object'];
  const kind = String(obj.kind);
  const where = `${kind}/${String(get(obj, 'metadata.name'))}`;
  const expected = CORE_KINDS[kind];
  if (!expected) return [`${where}: unknown kind`];
  const p: string[] = [];
  if (obj.apiVersion !== expected)
    p.push(`${where}: apiVersion is ${String(obj.apiVersion)}, expected ${expected}`);
  p.push(...metadataProblems(obj).map((m) => `${where}: ${m}`));
  if (NAMESPACED.has(kind) && typeof get(obj, 'metadata.namespace') !== 'string')
    p.push(`${where}: metadata.namespace is required here`);
  for (const f of REQUIRED[kind] ?? []) if (get(obj, f) === undefined) p.push(`${where}: ${f} is required`);
  const template =
    kind === 'Job' || kind === 'Deployment' || kind === 'StatefulSet' ? get(obj, 'spec.template') : undefined;
  if (template !== undefined) {
    p.push(...podProblems(`${where} spec.template.spec`, get(template, 'spec')));
    const sel = get(obj, 'spec.selector.matchLabels');
    const labels = get(template, 'metadata.labels');
    if (kind !== 'Job') {
      if (!isObj(sel) || Object.keys(sel).length === 0)
        p.push(`${where}: spec.selector.matchLabels is empty`);
      else if (!isObj(labels) || Object.entries(sel).some(([k, v]) => labels[k] !== v))
        p.push(`${where}: spec.selector does not match the template labels`);
    }
  }
  if (
    kind === 'Job' &&
    !['Never', 'OnFailure'].includes(String(get(obj, 'spec.template.spec.restartPolicy')))
  ) {
    p.push(`${where}: a Job's restartPolicy must be Never or OnFailure`);
  }
  if (kind === 'Service') {
    for (const port of (get(obj, 'spec.ports') as Json[]) ?? []) {
      const n = port.port as number;
      if (!Number.isInteger(n) || n < 1 || n > 65535) p.push(`${where}: port ${n} out of range`);
    }
  }
  if (kind === 'HorizontalPodAutoscaler') {
    const min = (get(obj, 'spec.minReplicas') as number | undefined) ?? 1;
    if (min > (get(obj, 'spec.maxReplicas') as number)) p.push(`${where}: minReplicas > maxReplicas`);
  }
  if (
    kind === 'PodDisruptionBudget' &&
    get(obj, 'spec.minAvailable') !== undefined &&
    get(obj, 'spec.maxUnavailable') !== undefined
  ) {
    p.push(`${where}: minAvailable and maxUnavailable are exclusive`);
  }
  if (kind === 'Secret' || kind === 'ConfigMap') {
    const data = {
      ...((obj.data as Json | undefined) ?? {}),
      ...((obj.stringData as Json | undefined) ?? {}),
    };
    for (const k of Object.keys(data))
      if (!/^[-._a-zA-Z0-9]+$/.test(k)) p.push(`${where}: key ${k} is invalid`);
  }
  return p;
}

/** Pod templates of the workloads among `objects`, with their owner. */
export function podTemplates(objects: readonly Json[]): { owner: Json; labels: Json; spec: Json }[] {
  return objects
    .filter((o) => ['Deployment', 'StatefulSet', 'Job'].includes(o.kind as string))
    .map((o) => ({
      owner: o,
      labels: (get(o, 'spec.template.metadata.labels') as Json) ?? {},
      spec: get(o, 'spec.template.spec') as Json,
    }));
}

function selects(selector: unknown, labels: Json): boolean {
  return isObj(selector) && Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/**
 * Problems between objects of one environment: what a Service, PDB, HPA,
 * NetworkPolicy or ScaledObject points at must exist; so must every
 * ConfigMap, ServiceAccount and (unless `externalSecrets` lists it) Secret a
 * pod refers to.
 */
export function referenceProblems(
  objects: readonly Json[],
  externalSecrets: readonly string[] = [],
  externalConfigMaps: readonly string[] = [],
): string[] {
  const p: string[] = [];
  const names = (kind: string) =>
    new Set(objects.filter((o) => o.kind === kind).map((o) => get(o, 'metadata.name')));
  const secrets = new Set<unknown>([...names('Secret'), ...externalSecrets]);
  const configMaps = new Set<unknown>([...names('ConfigMap'), ...externalConfigMaps]);
  const accounts = names('ServiceAccount');
  const pods = podTemplates(objects);
  for (const o of objects) {
    const where = `${String(o.kind)}/${String(get(o, 'metadata.name'))}`;
    const sel =
      o.kind === 'Service'
        ? get(o, 'spec.selector')
        : o.kind === 'NetworkPolicy'
          ? get(o, 'spec.podSelector.matchLabels')
          : get(o, 'spec.selector.matchLabels');
    if (
      ['Service', 'PodDisruptionBudget', 'NetworkPolicy'].includes(o.kind as string) &&
      !pods.some((t) => selects(sel, t.labels))
    ) {
      p.push(`${where}: its selector matches no pod template`);
    }
    if (o.kind === 'HorizontalPodAutoscaler' || o.kind === 'ScaledObject') {
      const ref = get(o, 'spec.scaleTargetRef') as Json;
      if (!objects.some((t) => t.kind === (ref.kind ?? 'Deployment') && get(t, 'metadata.name') === ref.name))
        p.push(`${where}: scale target ${String(ref.name)} does not exist`);
    }
    if (o.kind === 'ScaledObject') {
      for (const t of (get(o, 'spec.triggers') as Json[]) ?? []) {
        const auth = get(t, 'authenticationRef.name');
        if (
          auth !== undefined &&
          !objects.some((x) => x.kind === 'TriggerAuthentication' && get(x, 'metadata.name') === auth)
        ) {
          p.push(`${where}: TriggerAuthentication ${String(auth)} does not exist`);
        }
      }
    }
    if (o.kind === 'TriggerAuthentication') {
      for (const r of (get(o, 'spec.secretTargetRef') as Json[]) ?? [])
        if (!secrets.has(r.name)) p.push(`${where}: Secret ${String(r.name)} does not exist`);
      for (const r of (get(o, 'spec.configMapTargetRef') as Json[]) ?? [])
        if (!configMaps.has(r.name)) p.push(`${where}: ConfigMap ${String(r.name)} does not exist`);
    }
  }
  for (const t of pods) {
    const where = `${String(t.owner.kind)}/${String(get(t.owner, 'metadata.name'))}`;
    const sa = t.spec.serviceAccountName;
    if (sa !== undefined && !accounts.has(sa))
      p.push(`${where}: ServiceAccount ${String(sa)} does not exist`);
    // A StatefulSet's claim templates are volumes of its pods too.
    const claims = (get(t.owner, 'spec.volumeClaimTemplates') as Json[] | undefined) ?? [];
    const volumes = new Set<unknown>(claims.map((v) => get(v, 'metadata.name')));
    for (const v of (t.spec.volumes as Json[] | undefined) ?? []) {
      volumes.add(v.name);
      const s = get(v, 'secret.secretName');
      if (s !== undefined && get(v, 'secret.optional') !== true && !secrets.has(s))
        p.push(`${where}: Secret ${String(s)} (volume ${String(v.name)}) does not exist`);
      const cm = get(v, 'configMap.name');
      if (cm !== undefined && get(v, 'configMap.optional') !== true && !configMaps.has(cm))
        p.push(`${where}: ConfigMap ${String(cm)} (volume ${String(v.name)}) does not exist`);
    }
    for (const c of (t.spec.containers as Json[]) ?? []) {
      for (const m of (c.volumeMounts as Json[] | undefined) ?? [])
        if (!volumes.has(m.name)) p.push(`${where}: volumeMount ${String(m.name)} names no volume`);
    }
    for (const c of (t.spec.containers as Json[]) ?? []) {
      for (const e of (c.env as Json[] | undefined) ?? []) {
        const s = get(e, 'valueFrom.secretKeyRef.name');
        const optional = get(e, 'valueFrom.secretKeyRef.optional') === true;
        if (s !== undefined && !optional && !secrets.has(s))
          p.push(`${where}: Secret ${String(s)} does not exist`);
        const cm = get(e, 'valueFrom.configMapKeyRef.name');
        if (cm !== undefined && !configMaps.has(cm))
          p.push(`${where}: ConfigMap ${String(cm)} does not exist`);
      }
      for (const e of (c.envFrom as Json[] | undefined) ?? []) {
        const cm = get(e, 'configMapRef.name');
        if (cm !== undefined && !configMaps.has(cm))
          p.push(`${where}: ConfigMap ${String(cm)} does not exist`);
      }
    }
  }
  return p;
}
