"""Packaging for ktsketch: reads settings.ini (the nbdev 2 layout)."""
from configparser import ConfigParser
import setuptools

config = ConfigParser(delimiters=['='])
config.read('settings.ini', encoding='utf-8')
cfg = config['DEFAULT']

expected = ('version description keywords author author_email license min_python lib_name '
            'user copyright status audience language').split()
missing = [k for k in expected if k not in cfg]
if missing: raise SystemExit(f'settings.ini is missing: {missing}')

licenses = {'apache2': ('Apache Software License 2.0', 'OSI Approved :: Apache Software License')}
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable',
            '6 - Mature', '7 - Inactive']
py_versions = '3.10 3.11 3.12 3.13'.split()

lic = licenses.get(cfg['license'].lower(), (cfg['license'], None))
min_python = cfg['min_python']
requirements = cfg.get('requirements', '').split()
dev_requirements = cfg.get('dev_requirements', '').split()
align_requirements = cfg.get('align_requirements', '').split()   # face alignment (OpenCV's Haar cascades)
console_scripts = cfg.get('console_scripts', '').split()

setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    license=lic[0],
    classifiers=['Development Status :: ' + statuses[int(cfg['status'])],
                 'Intended Audience :: ' + cfg['audience'].title(),
                 'Natural Language :: ' + cfg['language'].title()]
                + ['Programming Language :: Python :: ' + o for o in py_versions[py_versions.index(min_python):]]
                + (['License :: ' + lic[1]] if lic[1] else []),
    url=cfg['git_url'],
    packages=setuptools.find_packages(include=['ktsketch', 'ktsketch.*']),
    include_package_data=True,
    package_data={'ktsketch': ['results/*.csv',      # the ablation table notebook 11 made (the demo report quotes it)
                               'notebooks/*.ipynb',   # the page `ktsketch lab` serves (notebook 07b)
                               'weights/*.pt', 'weights/*.json']},   # the shipped teachers and their manifests (03b)
    install_requires=requirements,
    extras_require={'dev': dev_requirements, 'align': align_requirements},
    python_requires='>=' + min_python,
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    zip_safe=False,
    entry_points={'console_scripts': console_scripts, 'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
    description=cfg['description'],
    author=cfg['author'], author_email=cfg['author_email'],
    keywords=cfg['keywords'],
)
