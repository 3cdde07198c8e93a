# Seventeen MiB of text in one folder: one file of 1 MiB and sixteen links to it.
{ ... }:
{
}
