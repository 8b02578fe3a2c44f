/**
 * The IAM requests AWS makes of one EC2 call, derived from the call's actual
 * input and AWS's documented semantics (local/aws-facts.ts), not from the
 * restore code's idea of them: RunInstances is authorized once per resource
 * it creates, each with the tags the request gives that resource type (none,
 * if it gives none); a call that uses a customer managed key makes KMS check
 * the caller's rights, EC2's grant included.
 */
import type { AttachVolumeCommandInput, RunInstancesCommandInput, Tag } from '@aws-sdk/client-ec2';
import { awsFacts, type Ec2ResourceType } from '../../local/aws-facts.ts';
import type { IamRequest } from './iam.ts';

export interface Place {
  region: string;
  account: string;
}

/** The condition keys of a request that tags a resource at creation: aws:RequestTag/* and aws:TagKeys. */
export function requestTagContext(tags: Tag[]): Record<string, string | string[]> {
  return {
    ...Object.fromEntries(tags.map((t) => [`aws:RequestTag/${t.Key}`, t.Value ?? ''])),
    'aws:TagKeys': tags.map((t) => t.Key!),
  };
}

/** The tags a request gives a resource type; none when it names no TagSpecification for it. */
export function tagsFor(specifications: RunInstancesCommandInput['TagSpecifications'], type: string): Tag[] {
  return specifications?.find((s) => s.ResourceType === type)?.Tags ?? [];
}

/**
 * What KMS checks of the caller when `call` uses a customer managed key
 * through EC2: the grant EC2 creates with the caller's identity, for an AWS
 * resource, and for a launch or a create the key's use.
 */
export function kmsRequestsOf(
  call: keyof typeof awsFacts.ebsEncryption.byCall,
  keyArn: string,
  place: Place,
): IamRequest[] {
  const grant = awsFacts.ebsEncryption.grantContext(place.region);
  return awsFacts.ebsEncryption.byCall[call].map((action) => ({
    action,
    resource: keyArn,
    context: action === 'kms:CreateGrant' ? grant : { 'kms:ViaService': grant['kms:ViaService'] },
  }));
}

/**
 * RunInstances as IAM sees it: one request per resource it creates, with that
 * type's request tags; CreateTags for each type it tags; the launch template,
 * subnet, image and security groups it uses; KMS for a root volume under a
 * customer managed key.
 */
export function runInstancesRequests(
  input: RunInstancesCommandInput,
  place: Place,
  uses: { subnetArn?: string; imageArn: string; rootKeyArn?: string },
): IamRequest[] {
  const arn = (type: string) => `arn:aws:ec2:${place.region}:${place.account}:${type}/*`;
  const created = awsFacts.runInstancesCreates.resources.map(
    (type: Ec2ResourceType): IamRequest => ({
      action: 'ec2:RunInstances',
      resource: arn(type),
      context: requestTagContext(tagsFor(input.TagSpecifications, type)),
    }),
  );
  const tagged = (input.TagSpecifications ?? []).map(
    (s): IamRequest => ({
      action: 'ec2:CreateTags',
      resource: arn(s.ResourceType!),
      context: { ...requestTagContext(s.Tags ?? []), 'ec2:CreateAction': 'RunInstances' },
    }),
  );
  const subnet = input.SubnetId ?? input.NetworkInterfaces?.[0]?.SubnetId;
  return [
    ...created,
    ...tagged,
    { action: 'ec2:RunInstances', resource: arn('launch-template') },
    { action: 'ec2:RunInstances', resource: arn('security-group') },
    { action: 'ec2:RunInstances', resource: uses.imageArn },
    ...(subnet ? [{ action: 'ec2:RunInstances', resource: uses.subnetArn ?? arn('subnet') }] : []),
    ...(uses.rootKeyArn ? kmsRequestsOf('RunInstances', uses.rootKeyArn, place) : []),
  ];
}

/** AttachVolume as IAM sees it: the volume (with its tags), the instance, and KMS for a CMK volume. */
export function attachVolumeRequests(
  input: AttachVolumeCommandInput,
  place: Place,
  volume: { tags: Record<string, string>; keyArn?: string },
): IamRequest[] {
  const arn = (type: string, id: string) => `arn:aws:ec2:${place.region}:${place.account}:${type}/${id}`;
  return [
    {
      action: 'ec2:AttachVolume',
      resource: arn('volume', input.VolumeId!),
      context: Object.fromEntries(Object.entries(volume.tags).map(([k, v]) => [`aws:ResourceTag/${k}`, v])),
    },
    { action: 'ec2:AttachVolume', resource: arn('instance', input.InstanceId!) },
    ...(volume.keyArn ? kmsRequestsOf('AttachVolume', volume.keyArn, place) : []),
  ];
}
