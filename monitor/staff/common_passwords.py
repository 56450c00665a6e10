"""A small list of passwords people pick first (lower case), refused by the policy.

Drawn from the well-known public leak top lists (and their Chinese
counterparts: pinyin, keyboard walks, lucky numbers); it is a speed bump,
not a breach database.
"""

from __future__ import annotations

_LIST = """
123456 1234567 12345678 123456789 1234567890 12345678910 123456789a 1234567890a
123123123123 111111111111 000000000000 888888888888 666666666666 123321123321
password password1 password12 password123 password1234 passw0rd p@ssw0rd p@ssword
qwerty qwertyuiop qwertyuiop123 qwerty123456 1qaz2wsx 1qaz2wsx3edc 1q2w3e4r5t6y
zaq12wsx zaq1zaq1 asdfghjkl asdfghjkl123 zxcvbnm zxcvbnm123 qazwsxedc qazwsxedcrfv
abc123 abc123456 abcd1234 abcd12345678 a123456789 aa123456789 iloveyou iloveyou123
woaini woaini1314 woaini520 5201314 1314520 woaiwojia wodemima mima123456
admin admin123 admin1234 admin123456 administrator root123456 toor letmein
letmein123 welcome welcome123 welcome1234 changeme changeme123 default
monkey dragon master shadow sunshine princess football baseball superman
trustno1 whatever freedom starwars computer internet secret secret123
dialwatch dialwatch123 kamailio asterisk asterisk123 freeswitch callcenter
callcenter123 huawei huawei123 huawei12345 zte123456 china123456 beijing
shanghai shenzhen guangzhou zhongguo aini1314 qq123456 qq123456789
"""
COMMON_PASSWORDS: frozenset[str] = frozenset(_LIST.split())
