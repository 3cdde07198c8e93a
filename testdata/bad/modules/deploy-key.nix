# A deploy key: never in a module.
{ ... }:
{
  environment.etc."deploy-key".text = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAA
-----END OPENSSH PRIVATE KEY-----
";
}
