# Café in Latin-1.
{ ... }:
{
}
