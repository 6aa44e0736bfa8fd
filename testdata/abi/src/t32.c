/* libt32: a 32-bit library (rpm writes its soname provide without "(64bit)"). */
int t32_get(void) { return 32; }
